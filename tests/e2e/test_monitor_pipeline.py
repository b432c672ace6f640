"""Close the loop: a skew-trained model serves representative traffic; `monitor` notices and fixes it."""

import subprocess
import sys
import time

import numpy as np
import pytest

from components.contract import ModelCard
from components.deploy.deploy import deploy
from components.deploy.repository_client import served_version
from components.registry import model_spec
from components.saved_model import export
from components.serving.client import predict_v1
from components.serving.traffic_log import read_traffic
from components.store.model_registry import read_card
from components.sum import data
from components.sum.model import SumTrainingConfig, train

pytestmark = pytest.mark.integration


@pytest.fixture()
def skew_trained_sum_served(store, model_server, tmp_path):
    """The article's model, deployed past the gate on purpose: the situation monitoring must catch."""
    inputs, targets = data.generate(data.SumDataSpec(recipe="seed-equal-pairs"))
    data.save(tmp_path / "train.npz", inputs, targets)
    export(train(inputs, targets, SumTrainingConfig(epochs=3)), tmp_path / "model")
    card = ModelCard.for_training(model_spec("sum"), inputs, {}, data_recipe="seed-equal-pairs")
    return deploy(store, tmp_path / "model", card, "local", model_server, tmp_path / "train.npz")


def test_monitor_detects_skew_and_drift_then_retrains_a_better_model(store, model_server, skew_trained_sum_served):
    rng = np.random.default_rng(0)
    traffic = np.concatenate([rng.uniform(0, 10_000, (300, 2)), rng.uniform(0, 1_000_000, (100, 2))])
    for batch in np.array_split(traffic, 8):
        predict_v1(model_server, "sum", batch.tolist())
    deadline = time.monotonic() + 20
    while len(read_traffic(store, "sum", skew_trained_sum_served)) < len(traffic):
        assert time.monotonic() < deadline, "traffic was not logged"
        time.sleep(0.5)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "run",
            "monitor",
            "--param",
            f"server_url={model_server}",
            "--param",
            "size=10000",
            "--param",
            "epochs=25",
            "--param",
            "window_minutes=10",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Drift detected" in result.stdout and "correlation" in result.stdout
    assert "outside the reference range" in result.stdout

    new_version = served_version(model_server, "sum")
    assert new_version != skew_trained_sum_served
    assert read_card(store, "sum", new_version).replaced == skew_trained_sum_served
    queries = [[1_000_000, 4], [4, 1_000_000], [500_000, 250_000], [2000, 3000]]
    answers = predict_v1(model_server, "sum", queries)["predictions"]
    for (x, y), answer in zip(queries, answers):
        assert answer == pytest.approx(x + y, rel=0.01), (x, y, answer)
