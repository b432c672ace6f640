"""IMAGE_PULL_SECRET at compile time names a pull Secret on every task of every pipeline, through kfp's compiler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.registry import COMPILED_DIR, registry


def executors(path: Path) -> tuple[set[str], dict[str, dict]]:
    """(every container executor of the spec, the platform spec's executors)."""
    pipeline, *platform = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    containers = {name for name, executor in pipeline["deploymentSpec"]["executors"].items() if "container" in executor}
    kubernetes = platform[0]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if platform else {}
    return containers, kubernetes


def test_every_task_names_the_pull_secret_when_compiled_with_one(tmp_path: Path) -> None:
    compile_to = (
        "from pathlib import Path; from pipelines.registry import compile_all; "
        f"compile_all(out_dir=Path({str(tmp_path)!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", compile_to], check=True, timeout=600, env={**os.environ, "IMAGE_PULL_SECRET": "regcred"}
    )
    for name in registry():
        containers, platform = executors(tmp_path / f"{name}.yaml")
        assert containers, name
        for executor in containers:
            secrets = [entry["secretName"] for entry in platform.get(executor, {}).get("imagePullSecret", [])]
            assert secrets == ["regcred"], (name, executor)


def test_the_committed_specs_name_no_pull_secret() -> None:
    for name in registry():
        _, platform = executors(COMPILED_DIR / f"{name}.yaml")
        assert not any("imagePullSecret" in executor for executor in platform.values()), name
