"""Labelling live queries with the simulator, and the targeted retraining data."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from components.three_body import live
from components.three_body.dataset import TrajectoryRows
from components.three_body.simulate import GRID_STEP, reference_solution


def _exact(x2: np.ndarray, t: float) -> np.ndarray:
    """Positions (6,) at exactly t from scipy DOP853 at rtol 1e-13, integrated to t itself."""

    def rhs(_t, y):
        x = y[:6].reshape(3, 2)
        d = x[None] - x[:, None]
        r2 = (d**2).sum(-1)
        np.fill_diagonal(r2, np.inf)
        return np.concatenate([y[6:], np.einsum("ijk,ij->ik", d, r2**-1.5).ravel()])

    x0 = np.stack([[1.0, 0.0], x2, -np.array([1.0, 0.0]) - x2])
    solution = solve_ivp(
        rhs, (0, t), np.concatenate([x0.ravel(), np.zeros(6)]), method="DOP853", rtol=1e-13, atol=1e-13, t_eval=[t]
    )
    return solution.y[:6, 0]


def test_cubic_interpolation_is_exact_on_the_grid_and_on_cubics():
    grid = np.arange(20) * GRID_STEP
    values = np.stack([grid**3 - grid, np.sin(grid)], axis=1)
    assert live.interpolate_grid(values, grid) == pytest.approx(values, abs=1e-15)
    t = np.array([0.3 * GRID_STEP, 7.5 * GRID_STEP, 18.9 * GRID_STEP])
    assert live.interpolate_grid(values, t)[:, 0] == pytest.approx(t**3 - t, abs=1e-14)


def test_labels_match_the_scipy_reference_on_the_grid_and_a_direct_integration_off_it():
    x2 = np.array([[-0.2, 0.3], [-0.4, 0.7]])
    grid_t = np.array([128 * GRID_STEP, 600 * GRID_STEP])
    off_t = np.array([0.7071, 2.3456])
    inputs = np.column_stack([np.concatenate([grid_t, off_t]), np.concatenate([x2, x2])])
    labelled = live.label_with_trajectories(inputs)
    assert labelled.result.labelled.all()
    assert labelled.result.computations == 2  # each x2 simulated once for all its queries
    reference = [reference_solution(row, 2.4) for row in x2]
    for i, k in enumerate((128, 600)):
        assert labelled.result.outputs[i] == pytest.approx(reference[i][k].ravel(), abs=1e-7)
    for i in range(2):
        # the interpolation error off the grid: measured below 1e-6 for t <= 3.9
        assert np.abs(labelled.result.outputs[2 + i] - _exact(x2[i], off_t[i])).max() < 1e-5


def test_queries_outside_the_domain_are_counted_not_labelled():
    inputs = np.array([[0.5, 0.3, 0.3], [0.5, -0.2, 0.3], [-1.0, -0.2, 0.3], [np.nan, -0.2, 0.3]])
    result = live.label(inputs)
    assert result.labelled.tolist() == [False, True, False, False]
    assert np.isnan(result.outputs[0]).all() and result.outputs.shape == (4, 6)


def test_draw_near_stays_in_the_region_and_near_its_centers():
    centers = np.array([[-0.45, 0.1], [-0.4, 0.8]])
    drawn = live.draw_near(centers, 200, 0.03, seed=0)
    assert drawn.shape == (200, 2) and live.in_region(drawn).all()
    assert np.min(np.linalg.norm(drawn[:, None] - centers[None], axis=-1), axis=1).max() < 0.2


def test_targeted_data_holds_out_live_queries_and_adds_simulations_in_the_weak_box():
    rng = np.random.default_rng(0)
    x2 = np.column_stack([rng.uniform(-0.5, 0.0, 12), rng.uniform(0.1, 0.9, 12)])
    boxes = np.array([[[-0.5, -0.25], [0.0, 1.0]]])
    previous = TrajectoryRows(np.zeros((5, 3)), np.zeros((5, 4)), np.array([0, 0, 1, 1, 1]))
    made = live.targeted_data(
        x2, boxes, previous, new_simulations=6, t_max=0.2, spread=0.02, validation_fraction=0.25, seed=0
    )
    s = made.statistics
    assert s["live_initial_conditions"] == 12 and s["new_initial_conditions"] == 6
    assert s["simulations"] == 18 and s["converged"] + s["not_converged"] == 18
    assert s["previous_rows"] == 5 and s["training_rows"] > 5
    assert len(made.validation.inputs) > 0
    assert not set(made.validation.simulation) & set(made.training.simulation)  # split by simulation
    new_x2 = np.unique(made.training.inputs[:, 1:], axis=0)
    assert len(new_x2) > 0


def test_retraining_data_keeps_the_served_versions_dropped_runs(tmp_path):
    """The retrained model's card keeps the holes of the data it was retrained on."""
    from types import SimpleNamespace

    from kfp.dsl import Metrics

    from components.three_body import dataset
    from components.three_body.component import targeted_three_body_data
    from components.three_body.coverage import Dropped

    previous = TrajectoryRows(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 0]))
    dropped = Dropped(np.array([[-0.48, 0.02]]), np.array([1], dtype=np.uint8))
    dataset.save(tmp_path / "served.npz", previous, dropped)
    live_queries = np.array([[0.1, -0.2, 0.3], [0.1, -0.1, 0.6], [0.1, -0.3, 0.5]])
    np.savez(tmp_path / "weak.npz", boxes=np.empty((0, 2, 2)), inputs=live_queries, labelled=np.ones(3, bool))
    out = {
        name: SimpleNamespace(path=str(tmp_path / f"{name}.npz"), metadata={}) for name in ("training", "validation")
    }
    targeted_three_body_data.python_func(
        weak_regions=SimpleNamespace(path=str(tmp_path / "weak.npz")),
        training_data=SimpleNamespace(path=str(tmp_path / "served.npz")),
        new_simulations=0,
        t_max=0.1,
        spread=0.02,
        validation_fraction=0.34,
        seed=0,
        statistics=Metrics(),
        **out,
    )
    np.testing.assert_array_equal(dataset.load_dropped(tmp_path / "training.npz").x2, dropped.x2)
