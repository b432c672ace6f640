"""Rows, split, network and evaluation of the three-body model, on small real simulations."""

import numpy as np
import pytest

from components.saved_model import export
from components.three_body import dataset
from components.three_body.evaluate import evaluate, relative_energy_error, report_html, trajectory_plots
from components.three_body.model import ThreeBodyTrainingConfig, load_predictor, profile, train
from components.three_body.simulate import sample_initial_x2, simulate


@pytest.fixture(scope="module")
def rows():
    x2 = sample_initial_x2(8, seed=3)
    return dataset.to_rows(simulate(x2, 1.0), x2)


def test_rows_pair_time_and_initial_x2_with_positions(rows):
    first = rows.simulation == rows.simulation[0]
    assert rows.inputs.shape[1] == 3 and rows.targets.shape[1] == 4
    assert rows.inputs[first][0, 0] == 0.0 and rows.inputs[first][-1, 0] == pytest.approx(1.0, abs=1 / 256)
    np.testing.assert_allclose(rows.targets[first][0, :2], [1.0, 0.0])  # x1(0) = (1, 0)
    np.testing.assert_allclose(rows.targets[first][0, 2:], rows.inputs[first][0, 1:])  # x2(0) is the input


def test_split_is_by_simulation_with_no_trajectory_on_both_sides(rows):
    train_ids, validation_ids = dataset.split_by_simulation(rows.simulation, 0.25, seed=0)
    assert set(train_ids).isdisjoint(validation_ids)
    assert set(train_ids) | set(validation_ids) == set(rows.simulation)
    assert set(rows.subset(validation_ids).simulation) == set(validation_ids)
    with pytest.raises(ValueError, match="validation_fraction"):
        dataset.split_by_simulation(rows.simulation, 1.0, seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        dataset.split_by_simulation(np.zeros(5), 0.5, seed=0)


def test_true_trajectories_score_zero_error_and_conserve_energy(rows):
    exact = {tuple(r): t for r, t in zip(rows.inputs, rows.targets)}
    evaluation = evaluate(lambda q: np.array([exact[tuple(r)] for r in q]), rows, t_max=1.0, timing_repeats=1)
    assert evaluation.mae == 0.0 and evaluation.simulation_mae_max == 0.0
    assert evaluation.energy_error_median < 1e-3  # finite-difference velocities of the true orbit
    assert evaluation.integrator_seconds > 0 and evaluation.metrics()["speedup_single"] > 0


def test_energy_error_grows_for_a_wrong_trajectory(rows):
    first = rows.simulation == rows.simulation[0]
    positions = np.stack([rows.targets[first][:, :2], rows.targets[first][:, 2:],
                          -rows.targets[first][:, :2] - rows.targets[first][:, 2:]], axis=1)
    times = rows.inputs[first][:, 0]
    # Finite differences are rough through a close encounter, so compare typical values.
    assert np.median(relative_energy_error(times, positions)) < 1e-3
    assert np.median(relative_energy_error(times, positions * 1.2)) > 0.1


def test_network_exports_all_three_bodies(rows, tmp_path):
    model = train(rows.inputs, rows.targets, ThreeBodyTrainingConfig(hidden_layers=2, units=16, epochs=1))
    export(model, tmp_path / "m")
    predicted = load_predictor(tmp_path / "m")(rows.inputs[:5])
    assert predicted.shape == (5, 6)
    np.testing.assert_allclose(predicted[:, 4:], -(predicted[:, :2] + predicted[:, 2:4]), atol=1e-5)
    plots = trajectory_plots(load_predictor(tmp_path / "m"), rows, cases=2)
    page = report_html(evaluate(load_predictor(tmp_path / "m"), rows, 1.0, timing_repeats=1), "PASS", plots)
    assert page.count("<svg") == 2 and "speedup_single" in page


def test_profiles():
    assert profile("paper").simulations == 10_000 and profile("paper").training.batch_size == 5000
    with pytest.raises(ValueError, match="unknown profile"):
        profile("huge")
    with pytest.raises(ValueError, match="hidden_layers"):
        ThreeBodyTrainingConfig(hidden_layers=0).validate()
