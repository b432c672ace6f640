"""Close the loop on accuracy: a three-body model that never saw half of Breen's region is asked
about all of it; `monitor` labels a sample of the traffic with the simulator, finds the unseen half
wrong, simulates there, retrains, and the new model is right where the old one was not."""

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from components.contract import ModelCard
from components.deploy.deploy import deploy
from components.deploy.repository_client import served_version
from components.monitor.accuracy import row_errors
from components.registry import model_spec
from components.saved_model import export
from components.serving.client import predict_v1
from components.serving.traffic_log import read_traffic
from components.three_body import dataset
from components.three_body.model import ThreeBodyTrainingConfig, load_predictor, train
from components.three_body.simulate import sample_initial_x2, simulate
from pipelines.local_run import LocalRun

pytestmark = pytest.mark.integration

T_MAX = 1.0  # short orbits: a small network learns them in seconds on 2 cores
SPLIT = -0.25  # trained only on x2x >= SPLIT; x2x < SPLIT is the unseen half
CONFIG = ThreeBodyTrainingConfig(hidden_layers=3, units=64, learning_rate=3e-3, batch_size=256, epochs=30)
RETRAIN = [
    "three_body_hidden_layers=3",
    "three_body_units=64",
    "three_body_learning_rate=0.003",
    "three_body_batch_size=512",
    "epochs=30",
]


def _rows(x2: np.ndarray) -> dataset.TrajectoryRows:
    return dataset.to_rows(simulate(x2, T_MAX), x2)


def _queries(x2: np.ndarray, per_x2: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, T_MAX, (len(x2), per_x2))
    return np.column_stack([t.reshape(-1), np.repeat(x2, per_x2, axis=0)])


def _live_mae(inputs: np.ndarray, served: np.ndarray) -> float:
    spec = model_spec("three-body")
    truth = spec.labelling.label(inputs)
    errors = row_errors(spec, served, truth.outputs)
    return float(np.nanmean(errors[truth.labelled]))


@pytest.fixture()
def half_trained_three_body_served(store, model_server, tmp_path):
    """Trained on the right half of Breen's region only; its held-out MAE (same half) in the card."""
    x2 = sample_initial_x2(400, 11)
    seen = x2[x2[:, 0] >= SPLIT]
    training, held_out = _rows(seen[:40]), _rows(seen[40:48])
    dataset.save(tmp_path / "train.npz", training)
    export(train(training.inputs, training.targets, CONFIG), tmp_path / "model")
    predicted = load_predictor(tmp_path / "model")(held_out.inputs)[:, :4]
    heldout_mae = float(np.abs(predicted - held_out.targets).mean())
    card = ModelCard.for_training(model_spec("three-body"), training.inputs, CONFIG.as_dict())
    card = dataclasses.replace(card, metrics={"mae": heldout_mae})
    version = deploy(store, tmp_path / "model", card, "local", model_server, tmp_path / "train.npz")
    return version, heldout_mae


def test_monitor_measures_live_mae_and_retrains_where_the_model_is_weak(
    store, model_server, half_trained_three_body_served
):
    version, heldout_mae = half_trained_three_body_served
    traffic = _queries(sample_initial_x2(80, 5), 5, 0)  # the whole region
    for batch in np.array_split(traffic, 8):
        predict_v1(model_server, "three-body", batch.tolist())
    deadline = time.monotonic() + 20
    while len(read_traffic(store, "three-body", version)) < len(traffic):
        assert time.monotonic() < deadline, "traffic was not logged"
        time.sleep(0.5)

    params = [
        "model=three-body",
        f"server_url={model_server}",
        "window_minutes=10",
        "sample_size=300",
        f"t_max={T_MAX}",
        "new_simulations=80",
        "mae_tolerance=0.25",
        "max_mae=0.5",
        *RETRAIN,
    ]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "monitor", *[arg for p in params for arg in ("--param", p)]],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout, f"\nmonitor run: {time.monotonic() - started:.0f} s")
    live = float(re.search(r"^live MAE: (\S+)$", result.stdout, re.M).group(1))
    assert live > heldout_mae * 1.25, (live, heldout_mae)

    # The monitor's own labelled sample: the unseen half was measured, and found wrong.
    run = LocalRun(Path(re.search(r"^run: (\S+)$", result.stdout, re.M).group(1)))
    with np.load(run.artifact_path("label-served-queries", "labelled")) as sample:
        errors = row_errors(model_spec("three-body"), sample["outputs"], sample["truth"])
        unseen = (sample["inputs"][:, 1] < SPLIT) & sample["labelled"]
    assert unseen.sum() >= 50
    before_unseen = float(errors[unseen].mean())
    assert before_unseen > 2 * heldout_mae, (before_unseen, heldout_mae)
    report = run.artifact_path("report-live-accuracy", "report").read_text()
    assert "<svg" in report and "Error map" in report

    new_version = served_version(model_server, "three-body")
    assert new_version != version, result.stdout
    assert f"deployed version {new_version}" in result.stdout
    fresh_x2 = sample_initial_x2(400, 99)
    fresh = _queries(fresh_x2[fresh_x2[:, 0] < SPLIT][:30], 4, 1)
    answered = predict_v1(model_server, "three-body", fresh.tolist())
    assert answered["model_version"] == new_version
    after_unseen = _live_mae(fresh, np.asarray(answered["predictions"]))
    print(
        f"held-out MAE {heldout_mae:.4f}; live MAE {live:.4f}; unseen half before {before_unseen:.4f}, "
        f"after {after_unseen:.4f}"
    )
    assert after_unseen * 2 <= before_unseen, (after_unseen, before_unseen)
