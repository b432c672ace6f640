"""The committed pipeline YAML: fresh, wired to Secret references, free of credential values."""

import yaml

from pipelines import registry as cli
from pipelines.store_access import STORE_SECRET

STORE_TASKS = {
    "sum": {"evaluate-sum-model", "deploy-model"},
    "three-body": {"evaluate-three-body-model", "deploy-model"},
    "monitor": {
        "collect-traffic",
        "collect-served-queries",
        "evaluate-sum-model",
        "evaluate-three-body-model",
        "deploy-model",
    },
}


def test_compiled_pipelines_are_fresh(tmp_path):
    for fresh in cli.compile_all(out_dir=tmp_path):
        committed = cli.compiled_path(fresh.stem)
        assert committed.exists(), f"{committed} missing: run make compile"
        assert committed.read_text() == fresh.read_text(), f"{committed} is stale: run make compile and commit"


def test_store_credentials_come_from_a_secret_reference_only():
    for name, tasks in STORE_TASKS.items():
        documents = list(yaml.safe_load_all(cli.compiled_path(name).read_text()))
        platform = next(d for d in documents if "platforms" in d)["platforms"]["kubernetes"]["deploymentSpec"]
        executors = platform["executors"]
        with_secret = {
            executor.removeprefix("exec-")
            for executor, spec in executors.items()
            if any(s["secretName"] == STORE_SECRET for s in spec.get("secretAsEnv", []))
        }
        assert tasks <= {t.rsplit("-", 1)[0] if t[-1].isdigit() else t for t in with_secret}, (name, with_secret)
        text = cli.compiled_path(name).read_text()
        assert "AWS_SECRET_ACCESS_KEY" in text  # the key name in the Secret, never a value
        assert "MINIO_SECRET_KEY:" not in text and "secret_key=" not in text
