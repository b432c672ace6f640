"""A problem no infrastructure module names is served (V1, V2), deployed and monitored."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from components import saved_model
from components.contract import ModelCard
from components.deploy.deploy import deploy
from components.deploy.repository_client import served_version
from components.monitor.traffic import collect
from components.registry import EXTRA_SPECS_VARIABLE
from components.serving.client import infer_v2, is_live, predict_v1
from components.store.object_store import ObjectStore, StoreConfig
from components.validation.drift import compare
from conftest import free_port
from tests.toy_model.spec import SPEC, build_tripler

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = ("serving", "deploy", "store", "monitor", "validation", "reporting")


@pytest.fixture(scope="module")
def toy_server(store_config: StoreConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A model server that knows the toy problem only through the registry's variable."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = tmp_path_factory.mktemp("toy-server")
    env = {**os.environ, EXTRA_SPECS_VARIABLE: "tests.toy_model.spec", "PYTHONPATH": str(ROOT)}
    with (work / "server.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "components.serving", "--http-port", str(port), "--cache-dir", str(work / "cache")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120
    while not is_live(url):
        assert process.poll() is None and time.monotonic() < deadline, (work / "server.log").read_text()[-3000:]
        time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_no_infrastructure_module_imports_a_problem_package():
    for package in INFRASTRUCTURE:
        for path in (ROOT / "components" / package).rglob("*.py"):
            if "tests" in path.parts:
                continue
            text = path.read_text()
            for problem in ("components.sum", "components.three_body"):
                assert problem not in text, f"{path.relative_to(ROOT)} names {problem}"


def test_a_toy_problem_is_deployed_served_and_monitored(store_config, toy_server, tmp_path):
    store = ObjectStore(store_config)
    inputs = np.linspace(0.0, 10.0, 200).reshape(-1, 1)
    np.savez(tmp_path / "training.npz", inputs=inputs, targets=3 * inputs[:, 0])
    saved_model.export(build_tripler(), tmp_path / "model")
    card = ModelCard.for_training(SPEC, inputs, {"weights": "set to 3"})

    version = deploy(store, tmp_path / "model", card, "local", toy_server, tmp_path / "training.npz")
    assert served_version(toy_server, "triple") == version

    v1 = predict_v1(toy_server, "triple", [[2.0], [50.0]])
    assert v1["model_version"] == version
    assert v1["predictions"] == pytest.approx([6.0, 150.0])
    assert v1["out_of_envelope"] == [False, True]  # 50 is beyond the training range [0, 10]
    v2 = infer_v2(toy_server, "triple", "values", [[4.0]])
    assert v2["outputs"][0]["name"] == "tripled" and v2["outputs"][0]["data"] == pytest.approx([12.0])

    # Monitoring: the logged traffic of the served version comes back beside its training data.
    asked = np.random.default_rng(0).uniform(20.0, 30.0, size=(60, 1))
    predict_v1(toy_server, "triple", asked.tolist())
    deadline = time.monotonic() + 30
    while True:
        seen = collect(store, "triple", dt.timedelta(minutes=5))
        if len(seen.traffic_inputs) >= 60 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen.version == version
    assert len(seen.traffic_inputs) >= 60
    np.testing.assert_allclose(seen.training_inputs, inputs)
    report = compare(seen.training_inputs, seen.traffic_inputs.reshape(-1, 1), SPEC.input_columns)
    assert report.drift_detected
