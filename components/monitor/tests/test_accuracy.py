"""Live accuracy: stratified sampling, labelling through the spec, weighted MAE, weak regions, the report."""

import datetime as dt
import json

import numpy as np
import pytest

from components.contract import Labelling, LabelResult, ModelSpec
from components.monitor import accuracy as acc
from components.registry import model_spec


def test_stratified_sample_covers_a_rare_stratum_and_weights_estimate_the_traffic():
    strata = np.array([0] * 900 + [1] * 90 + [2] * 10)
    chosen, weights = acc.stratified_sample(strata, 60, seed=0)
    assert len(chosen) == 60 and len(set(chosen.tolist())) == 60
    counts = np.bincount(strata[chosen], minlength=3)
    assert counts.tolist() == [25, 25, 10]  # the rare stratum gives all it has, the rest share the remainder
    assert np.sum(weights) == pytest.approx(1000)  # the weights add up to the traffic
    # a weighted mean of a per-stratum constant is the traffic's mean
    values = np.array([1.0, 2.0, 10.0])[strata[chosen]]
    assert np.sum(values * weights) / np.sum(weights) == pytest.approx((900 * 1 + 90 * 2 + 10 * 10) / 1000)


def test_sample_larger_than_the_traffic_takes_everything():
    chosen, weights = acc.stratified_sample(np.array([0, 0, 1]), 10, seed=0)
    assert sorted(chosen.tolist()) == [0, 1, 2] and np.all(weights == 1)


def test_plane_cells_and_time_slices():
    bounds = ((-0.5, 0.0), (0.0, 1.0))
    points = np.array([[-0.5, 0.0], [-0.01, 0.99], [0.0, 1.0], [-0.3, 0.6]])
    assert acc.plane_cells(points, bounds, 4).tolist() == [0, 15, 15, 1 * 4 + 2]
    assert np.allclose(acc.cell_box(6, 4, bounds), ((-0.375, -0.25), (0.5, 0.75)))
    assert acc.time_slices(np.array([0.0, 5.0, 10.0]), 4).tolist() == [0, 2, 3]
    assert acc.time_slices(np.array([3.0, 3.0]), 4).tolist() == [0, 0]


def test_sum_labelling_is_exact():
    spec = model_spec("sum")
    result = spec.labelling.label(np.array([[2000.0, 3000.0], [4.0, 5.0], [0.1, 0.1]]))
    assert result.outputs[:, 0].tolist() == pytest.approx([5000.0, 9.0, 0.2])
    assert result.labelled.all() and result.computations == 0


def test_live_accuracy_weighs_strata_counts_unlabelled_and_finds_the_weak_cell():
    spec = model_spec("sum")
    inputs = np.array([[1.0, 1.0], [2.0, 2.0], [9.0, 9.0], [8.0, 8.0], [5.0, 5.0]])
    truth = spec.labelling.label(inputs)
    served = truth.outputs + np.array([[0.1], [0.1], [3.0], [5.0], [0.0]])
    labelled = np.array([True, True, True, True, False])
    weights = np.array([10.0, 10.0, 1.0, 1.0, 1.0])
    cells = np.array([0, 0, 3, 3, 1])
    slices = np.array([0, 1, 0, 1, 1])
    result = acc.live_accuracy(spec, inputs, served, truth.outputs, labelled, weights, slices, cells)
    assert result.mae == pytest.approx((10 * 0.1 + 10 * 0.1 + 3 + 5) / 22)
    assert result.by_cell == pytest.approx({0: 0.1, 3: 4.0})
    assert result.by_slice == pytest.approx({0: (1 + 3) / 11, 1: (1 + 5) / 11})
    assert (result.labelled, result.unlabelled) == (4, 1)
    assert acc.exceeds(result.mae, 0.1, 0.5) and not acc.exceeds(result.mae, 1.0, 0.5)
    assert not acc.exceeds(result.mae, None, 0.5)
    assert acc.weak_cells(result, 0.1, 0.5, min_rows=2) == [3]
    assert acc.weak_cells(result, 0.1, 0.5, min_rows=3) == []
    metrics = result.metrics(0.1, 2)
    assert metrics["live_mae"] == result.mae and metrics["live_mae_cell_1_1"] == pytest.approx(4.0)


def test_three_body_scores_bodies_1_and_2_and_reports_time_windows():
    spec = model_spec("three-body")
    inputs = np.array([[0.5, -0.2, 0.3], [1.5, -0.2, 0.3]])
    truth = np.zeros((2, 6))
    served = np.array([[0.1, 0.1, 0.1, 0.1, 9.0, 9.0], [0.2, 0.2, 0.2, 0.2, 9.0, 9.0]])  # x3 is not scored
    result = acc.live_accuracy(
        spec, inputs, served, truth, np.ones(2, bool), np.ones(2), np.zeros(2, int), np.zeros(2, int)
    )
    assert result.mae == pytest.approx(0.15)
    assert result.by_time_window == pytest.approx({"0-1": 0.1, "1-2": 0.2})


def test_a_spec_labelling_must_name_its_own_columns():
    with pytest.raises(ValueError, match="unknown column"):
        ModelSpec(
            "m",
            "in",
            ("a", "b"),
            "out",
            ("o",),
            load=lambda p: None,
            smoke_rows=(),
            labelling=Labelling(label=lambda x: LabelResult(x, np.ones(len(x), bool)), plane=("a", "z")),
        )


def test_error_map_and_reports_render():
    spec = model_spec("three-body")
    bounds = ((-0.5, 0.0), (0.0, 1.0))
    result = acc.LiveAccuracy(
        0.2, 3, 2, 1, {0: 0.2}, {0: 0.05, 5: 0.4}, {0: 1, 5: 1}, {"0-1": 0.2}, np.array([0.05, 0.4, np.nan])
    )
    svg = acc.error_map(
        "map",
        ("x2x", "x2y"),
        bounds,
        4,
        result.by_cell,
        np.array([[-0.4, 0.1], [-0.3, 0.4], [-0.1, 0.9]]),
        result.row_errors,
        0.1,
    )
    assert svg.startswith("<svg") and svg.count("<rect") == 3 and svg.count("<circle") == 3
    lines = acc.summary_lines("three-body", result, 0.1, True, [5], 4, bounds, spec.labelling, 7, 0.5)
    assert lines[0].startswith("live MAE: 0.2") and "x2x [-0.375, -0.25)" in lines[3]
    page = acc.report_html("three-body", lines, result, 4, bounds, spec.labelling, svg)
    assert "Error map" in page and "By t window" in page
    markdown = acc.report_markdown(lines, result, 4, bounds, spec.labelling)
    assert "| 0-1 | 0.2 |" in markdown and "| x2x [-0.375, -0.25) x x2y [0.25, 0.5) | 0.4 | 1 |" in markdown


class FakeStore:
    def __init__(self, objects):
        self.objects = objects

    def ensure_bucket(self, bucket):
        pass

    def list_keys(self, bucket, prefix):
        return [k for k in self.objects if k.startswith(prefix)]

    def get_bytes(self, bucket, key):
        return self.objects[key]


def test_read_served_returns_inputs_answers_and_times_within_the_window():
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    old = {"time": (now - dt.timedelta(hours=2)).isoformat(), "inputs": [[1, 2]], "outputs": [3.5]}
    new = {"time": now.isoformat(), "inputs": [[4, 5], [6, 7]], "outputs": [9.1, 13.2]}
    body = "\n".join(json.dumps(r) for r in (old, new)).encode()
    served = acc.read_served(FakeStore({"sum/v1/a.jsonl": body}), "sum", "v1", now - dt.timedelta(hours=1))
    assert served.inputs.tolist() == [[4, 5], [6, 7]]
    assert served.outputs.tolist() == [[9.1], [13.2]]
    assert served.seconds.tolist() == [now.timestamp()] * 2
    assert len(acc.read_served(FakeStore({}), "sum", "v1").inputs) == 0
