"""Dropped runs are kept, mapped and written into the card as holes; the evaluation sits beside Breen's."""

import numpy as np
import pytest

from components.contract import ModelCard
from components.three_body import dataset
from components.three_body.coverage import HOLE_RADIUS, Dropped, holes, map_html
from components.three_body.evaluate import ThreeBodyEvaluation, evaluate, report_html
from components.three_body.shards import Shard, gather
from components.three_body.simulate import Status, time_grid
from components.three_body.spec import SPEC


def _shard(start: int, x2: np.ndarray, status: list[int]) -> Shard:
    """A shard with two time points per kept simulation: what gather needs, without simulating."""
    status_codes = np.array(status, dtype=np.uint8)
    kept = np.flatnonzero(status_codes == Status.CONVERGED)
    inputs = np.column_stack([np.tile([0.0, 0.5], len(kept)), np.repeat(x2[kept], 2, axis=0)])
    rows = dataset.TrajectoryRows(inputs, np.zeros((len(inputs), 4)), np.repeat(kept + start, 2))
    n = len(x2)
    return Shard(start, x2, status_codes, np.ones(n, bool), np.zeros(n), rows)


X2 = np.array([[-0.1, 0.5], [-0.48, 0.02], [-0.2, 0.2], [-0.3, 0.6], [-0.45, 0.05], [-0.05, 0.9]])
STATUS = [Status.CONVERGED, Status.STEP_TOO_SMALL, Status.CONVERGED, Status.CONVERGED, Status.DIVERGED, 0]


@pytest.fixture
def gathered():
    return gather([_shard(3, X2[3:], STATUS[3:]), _shard(0, X2[:3], STATUS[:3])], 0.25, 0)


def test_gather_keeps_the_dropped_initial_conditions_and_why(gathered):
    np.testing.assert_array_equal(gathered.dropped.x2, X2[[1, 4]])
    assert gathered.dropped.status.tolist() == [Status.STEP_TOO_SMALL, Status.DIVERGED]
    stats = gathered.statistics
    assert stats["dropped"] == 2 and stats["dropped_step_too_small"] == 1 and stats["dropped_diverged"] == 1


def test_the_training_file_carries_the_dropped_runs(gathered, tmp_path):
    dataset.save(tmp_path / "training.npz", gathered.training, gathered.dropped)
    dataset.save(tmp_path / "validation.npz", gathered.validation)
    again = dataset.load_dropped(tmp_path / "training.npz")
    np.testing.assert_array_equal(again.x2, gathered.dropped.x2)
    np.testing.assert_array_equal(again.status, gathered.dropped.status)
    assert len(dataset.load_dropped(tmp_path / "validation.npz").x2) == 0
    np.testing.assert_array_equal(dataset.load(tmp_path / "training.npz").inputs, gathered.training.inputs)


def test_the_served_card_flags_queries_near_a_dropped_run(gathered):
    region = np.array([[0.0, -0.5, 0.0], [3.9, 0.0, 1.0]])  # trained over Breen's whole box
    card = ModelCard.for_training(SPEC, region, {}, holes=holes(gathered.dropped))
    envelope = ModelCard.from_dict(card.to_dict()).envelope
    assert envelope is not None
    step = HOLE_RADIUS / 2
    queries = np.array(
        [
            [0.3, -0.48 + step, 0.02],  # within the radius of the dropped (-0.48, 0.02)
            [0.5, -0.45, 0.05 - step],  # of the dropped (-0.45, 0.05)
            [0.3, -0.2, 0.2],  # a kept initial condition
            [0.3, -0.48, 0.02 + 2 * HOLE_RADIUS],  # beyond the radius of both
        ]
    )
    assert ((np.array(envelope.low) <= queries) & (queries <= np.array(envelope.high))).all()  # all in the box
    assert envelope.outside(queries).tolist() == [True, True, False, False]


def test_the_data_map_shows_kept_and_dropped_runs_and_the_holes(gathered):
    page = map_html(gathered.training.initial_x2(), gathered.validation.initial_x2(), gathered.dropped)
    assert page.count("<svg") == 1 and page.count("<ellipse") == 2
    assert "dropped, step_too_small: 1" in page and "dropped, diverged: 1" in page and "too_many_steps" not in page
    assert page.count("<circle") == len(X2)


def test_no_dropped_run_leaves_no_hole():
    none = Dropped(np.empty((0, 2)), np.empty(0, np.uint8))
    assert not holes(none).inside(np.array([[-0.48, 0.02]])).any()


def _evaluation(mae_up_to: dict[str, float]) -> ThreeBodyEvaluation:
    return ThreeBodyEvaluation(
        0.03, {"0-1": 0.01}, mae_up_to, 0.01, 0.05, 2.1, 1e-3, 1e-6, 1e-3, 0.5, (0.01, 0.02, 2.1)
    )


def test_the_evaluation_report_sets_the_model_beside_breen_and_the_gate():
    page = report_html(_evaluation({"3.9": 0.0213}), "PASS", [], 0.08)
    for figure in ("0.0213", "0.014", "0.013-0.015", "0.008", "0.05", "0.09", "0.16"):
        assert figure in page
    assert page.count("not simulated") == 2  # t <= 7.8 and t <= 10
    assert "at most <b>0.08</b>" in page and "3 held-out simulations" in page


START = np.array([1.0, 0.0, -0.2, 0.3, -0.8, -0.3])  # x1, x2, x3 at t = 0


def test_mae_up_to_breens_horizons_covers_the_grid_to_each():
    times = time_grid(3.9)
    rows = dataset.TrajectoryRows(
        np.column_stack([times, np.full_like(times, -0.2), np.full_like(times, 0.3)]),
        START[:4] + times[:, None],
        np.zeros(len(times), dtype=np.int64),
    )
    result = evaluate(lambda x: np.tile(START, (len(x), 1)), rows, 0.5, timing_repeats=1)  # off by t
    assert result.mae_up_to == {"3.9": pytest.approx(times.mean())}  # every point to 999/256; no 7.8 or 10
    assert result.simulation_mae == (pytest.approx(times.mean()),)
