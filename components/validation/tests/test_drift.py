"""Behavioural tests: the article's skewed training data must be caught, identical data must not."""

from __future__ import annotations

import json
import re
import time
from itertools import combinations

import numpy as np
import pytest
import yaml

from ..drift import (
    DriftReport,
    DriftThresholds,
    compare,
    holm_adjusted,
    load_dataset,
    range_exceedance_pvalue,
)
from ..report import render_html, render_markdown

PAIR = ["x", "y"]
THREE_BODY = ["t", "x2x", "x2y"]


def article_training_pairs() -> np.ndarray:
    """The article's training set: [1, 1] and [i, i] for odd i in 3..9999."""
    return np.array([[1, 1]] + [[i, i] for i in range(3, 10000, 2)], dtype=float)


def independent_pairs(n: int, high: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high + 1, size=(n, 2)).astype(float)


def three_body_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Non-linear dependence between features, like a trajectory sampled over time."""
    t = rng.uniform(0, 10, n)
    return np.column_stack([t, np.cos(t) + rng.normal(0, 0.1, n), np.sin(t) + rng.normal(0, 0.1, n)])


def failed(report: DriftReport) -> set[str]:
    return {c.name for c in report.tests if not c.passed}


# --- no false alarms ------------------------------------------------------------


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda rng: rng.uniform(0, 10_000, size=(5000, 2)), PAIR),
        (lambda rng: np.repeat(rng.integers(0, 10_000, size=(5000, 1)), 2, axis=1).astype(float), PAIR),
        (lambda rng: three_body_like(5000, rng), THREE_BODY),
    ],
    ids=["independent-pairs", "equal-pairs", "three-body"],
)
def test_identical_distributions_pass(make, names):
    rng = np.random.default_rng(7)
    report = compare(make(rng), make(rng), names, seed=7)
    assert not report.drift_detected, report.reasons
    assert report.reasons == []


def test_false_alarm_rate_stays_within_alpha_for_small_serving_windows():
    """Distances on 200 rows are noisy; they do not vote, and Holm keeps the tests' alarms within alpha."""
    thresholds = DriftThresholds(energy_sample_size=200, n_permutations=200)
    runs = 20
    alarms = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        reference, current = three_body_like(2000, rng), three_body_like(200, rng)
        alarms += compare(reference, current, THREE_BODY, thresholds, seed).drift_detected
    assert alarms <= 2, f"{alarms}/{runs} false alarms"


# --- the article's drift --------------------------------------------------------


def test_article_equal_pairs_vs_independent_traffic_is_flagged_by_joint_structure():
    reference = article_training_pairs()
    current = independent_pairs(5000, 10_000, seed=1)
    report = compare(reference, current, PAIR)

    assert report.drift_detected
    # The marginals look alike: only the joint checks may (and must) fire.
    assert failed(report) == {"spearman_diff", "energy_pvalue"}
    correlation = next(r for r in report.reasons if "correlation" in r)
    assert correlation.startswith("x,y: Spearman correlation 1.00 in reference vs ")
    assert ">= 0.2" in correlation


def test_joint_drift_is_caught_on_a_small_serving_window():
    report = compare(article_training_pairs(), independent_pairs(50, 10_000, seed=2), PAIR)
    assert "spearman_diff" in failed(report)


def test_traffic_far_outside_training_range_is_flagged_with_range_reason():
    reference = independent_pairs(5000, 10_000, seed=3)
    current = independent_pairs(5000, 1_000_000, seed=4)
    report = compare(reference, current, PAIR)

    assert {"range_coverage", "ks_pvalue"} <= failed(report)
    assert not next(c for c in report.checks if c.name == "wasserstein_normed").passed  # large, but no vote
    range_reasons = [r for r in report.reasons if "outside the reference range" in r]
    assert len(range_reasons) == 2
    # uniform 0..1e6 puts ~99% of values above the training maximum of ~10,000
    expected = r"x: 9\d(\.\d+)?% of current rows lie outside the reference range \[\d+, \d+\]"
    assert re.match(expected, range_reasons[0])


def test_few_out_of_range_values_are_tolerated_but_many_are_not():
    rng = np.random.default_rng(5)
    reference = rng.uniform(0, 1, size=(5000, 1))
    current = rng.uniform(0, 1, size=(5000, 1))
    current[:25] = 5.0  # 0.5% outside: tolerated by the 99% coverage threshold
    assert "range_coverage" not in failed(compare(reference, current, ["x"]))
    current[:100] = 5.0  # 2% outside
    assert "range_coverage" in failed(compare(reference, current, ["x"]))


def test_shifted_mean_is_flagged_by_ks_on_that_feature_only_and_sized_by_effect_sizes():
    rng = np.random.default_rng(6)
    reference = rng.normal(size=(5000, 3))
    current = rng.normal(size=(5000, 3))
    current[:, 1] += 1.0
    report = compare(reference, current, THREE_BODY)

    failed_tests = {(c.name, c.features) for c in report.tests if not c.passed}
    assert ("ks_pvalue", ("x2x",)) in failed_tests
    assert not any(features in {("t",), ("x2y",)} for _, features in failed_tests)
    large = {(c.name, c.features) for c in report.checks if not c.votes and not c.passed}
    assert {("psi", ("x2x",)), ("wasserstein_normed", ("x2x",)), ("js_distance", ("x2x",))} <= large


def test_changed_nonlinear_dependence_is_caught_by_energy_test():
    """Spearman misses a swapped cos/sin relation; the multivariate test does not."""
    rng = np.random.default_rng(8)
    reference = three_body_like(5000, rng)
    current = three_body_like(5000, rng)
    current[:, 1] = np.cos(current[:, 0] + np.pi / 2) + rng.normal(0, 0.1, 5000)
    report = compare(reference, current, THREE_BODY)
    assert "energy_pvalue" in failed(report)


def test_large_effect_size_from_sampling_noise_does_not_vote():
    rng = np.random.default_rng(9)
    report = compare(rng.normal(size=(5000, 1)), rng.normal(size=(15, 1)), ["x"])
    js = next(c for c in report.checks if c.name == "js_distance")
    assert js.value >= js.threshold and not js.passed and not js.votes
    assert "large by the 0.1 convention" in js.reason
    assert not report.drift_detected and js.reason not in report.reasons


# --- report structure -----------------------------------------------------------


def test_report_to_dict_is_strict_json_and_consistent():
    reference = article_training_pairs()
    report = compare(reference, independent_pairs(2000, 10_000, seed=1), PAIR)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))

    assert data["drift_detected"] is True
    assert data["reasons"] == report.reasons
    assert data["n_reference"] == 5000 and data["n_current"] == 2000
    assert data["thresholds"]["psi"] == 0.2
    assert data["unit_name"] == "row" and data["n_current_units"] == 2000
    # tests: KS and range per feature, Spearman per pair, energy; descriptive: 3 effect sizes per feature
    assert len(data["checks"]) == 2 * 2 + 1 + 1 + 2 * 3
    assert sum(c["votes"] for c in data["checks"]) == 6
    assert data["error_control"].startswith("6 tests at family-wise alpha 0.05 (Holm)")
    assert all(isinstance(c["passed"], bool) for c in data["checks"])


def test_holm_adjusted_p_values():
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, then made non-decreasing
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm_adjusted([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_each_test_is_judged_by_its_holm_adjusted_p_value_against_alpha():
    rng = np.random.default_rng(10)
    one = compare(rng.normal(size=(100, 1)), rng.normal(size=(100, 1)), ["x"], DriftThresholds(alpha=0.1))
    assert [c.name for c in one.tests] == ["ks_pvalue", "range_coverage"]
    for check in one.tests:
        assert check.threshold == 0.1 and check.condition.startswith("Holm p <= 0.1")
        assert check.value == pytest.approx(min(1.0, check.details["holm_p_value"]))
        assert check.value >= check.details["p_value"]


def test_same_seed_gives_same_report():
    rng = np.random.default_rng(11)
    reference, current = three_body_like(3000, rng), three_body_like(3000, rng)
    assert compare(reference, current, THREE_BODY, seed=3) == compare(reference, current, THREE_BODY, seed=3)


def test_constant_features_give_finite_results():
    reference = np.column_stack([np.full(100, 2.0), np.arange(100.0)])
    report = compare(reference, reference.copy(), PAIR)
    assert not report.drift_detected, report.reasons
    json.dumps(report.to_dict(), allow_nan=False)
    shifted = reference.copy()
    shifted[:, 0] = 3.0
    assert "range_coverage" in failed(compare(reference, shifted, PAIR))


# --- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference, current, names, message",
    [
        (np.zeros((10, 2)), np.zeros((10, 3)), PAIR, "current has 3 feature columns"),
        (np.zeros(10), np.zeros((10, 1)), ["x"], r"reference must be 2-D .* shape \(10,\)"),
        (np.zeros((1, 2)), np.zeros((10, 2)), PAIR, "reference needs at least 2 rows, got 1"),
        (np.zeros((10, 2)), np.full((10, 2), np.nan), PAIR, r"current contains NaN or inf in feature\(s\) \['x', 'y'"),
        (np.zeros((10, 2)), np.array([[0.0, np.inf]] * 10), PAIR, r"NaN or inf in feature\(s\) \['y'\]"),
        (np.zeros((10, 2)), np.zeros((10, 2)), ["x", "x"], "feature_names must be unique"),
        (np.zeros((10, 2)), np.zeros((10, 2)), "xy", "sequence of non-empty strings"),
        (np.zeros((10, 0)), np.zeros((10, 0)), [], "feature_names is empty"),
        (np.array([["a", "b"]] * 3), np.zeros((3, 2)), PAIR, "reference must be numeric"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(reference, current, names, message):
    with pytest.raises(ValueError, match=message):
        compare(reference, current, names)


def test_too_few_permutations_for_corrected_alpha_is_rejected():
    names = [f"f{i}" for i in range(30)]
    data = np.random.default_rng(0).normal(size=(50, 30))
    with pytest.raises(ValueError, match="n_permutations=100 cannot give a p-value below"):
        compare(data, data, names, DriftThresholds(n_permutations=100))


@pytest.mark.parametrize(
    "field, value",
    [
        ("alpha", 0.0),
        ("alpha", 1.0),
        ("alpha", float("nan")),
        ("psi", -0.1),
        ("js_distance", 1.5),
        ("wasserstein_normed", 0.0),
        ("range_coverage", 1.01),
        ("correlation_diff", 0.0),
        ("correlation_diff", 2.5),
        ("alpha", "0.05"),
        ("n_bins", 1),
        ("n_bins", 10.0),
        ("energy_sample_size", 5),
        ("n_permutations", True),
    ],
)
def test_threshold_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"DriftThresholds\.{field}"):
        DriftThresholds(**{field: value})


def test_default_thresholds_follow_the_documented_conventions():
    t = DriftThresholds()
    assert (t.alpha, t.psi, t.js_distance, t.wasserstein_normed) == (0.05, 0.2, 0.1, 0.1)
    assert (t.range_coverage, t.correlation_diff, t.n_bins) == (0.99, 0.2, 10)


# --- rendering ------------------------------------------------------------------


@pytest.fixture(scope="module")
def article_case():
    reference = article_training_pairs()
    current = independent_pairs(3000, 10_000, seed=1)
    return compare(reference, current, PAIR), reference, current


def test_markdown_puts_verdict_and_reasons_before_the_table(article_case):
    report, reference, current = article_case
    markdown = render_markdown(report, reference, current, PAIR, "Adder: training vs serving")

    assert markdown.startswith("# Adder: training vs serving\n")
    assert "**Drift detected: 2 of 6 tests failed.**" in markdown
    assert markdown.count("| **FAIL** |") == 2 and markdown.count("| PASS |") == 4
    assert markdown.count("| small |") + markdown.count("| large |") == 6
    assert "Error control: 6 tests at family-wise alpha 0.05 (Holm)" in markdown
    why = markdown.index("## Why")
    assert why < markdown.index("Spearman correlation 1.00 in reference") < markdown.index("## Checks")
    assert "\\|diff\\|" in markdown  # a pipe inside a reason must not split the table row
    for table, columns in (("## Checks", 6), ("## Features", 5)):
        rows = markdown.split(table)[1].split("\n\n")[1].splitlines()
        assert all(row.replace("\\|", "").count("|") == columns + 1 for row in rows), rows


def test_markdown_for_clean_data_says_so():
    rng = np.random.default_rng(12)
    reference, current = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    markdown = render_markdown(compare(reference, current, PAIR), reference, current, PAIR)
    assert "No drift detected" in markdown and "FAIL" not in markdown


def test_html_is_self_contained_with_a_plot_per_feature_and_a_scatter(article_case):
    report, reference, current = article_case
    page = render_html(report, reference, current, PAIR, "Adder <drift>")

    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == len(PAIR) + 1
    assert "<title>y vs x</title>" in page
    assert not re.search(r"https?://|src=|href=|@import|url\(", page)
    assert "Adder &lt;drift&gt;" in page and "Adder <drift>" not in page
    assert page.count('<tr class="fail">') == 2
    assert "Spearman correlation 1.00 in reference" in page


def test_html_of_single_feature_has_no_scatter():
    rng = np.random.default_rng(13)
    reference, current = rng.normal(size=(300, 1)), rng.normal(size=(300, 1))
    page = render_html(compare(reference, current, ["x"]), reference, current, ["x"])
    assert page.count("<svg") == 1


def test_rendering_other_data_than_the_report_is_rejected(article_case):
    report, reference, current = article_case
    with pytest.raises(ValueError, match="differ from the report"):
        render_markdown(report, reference, current, ["a", "b"])
    with pytest.raises(ValueError, match="rows but the report was built"):
        render_html(report, reference, current[:10], PAIR)


# --- speed ----------------------------------------------------------------------


def test_100k_rows_compare_and_render_in_a_few_seconds():
    rng = np.random.default_rng(14)
    reference, current = three_body_like(100_000, rng), three_body_like(100_000, rng)
    start = time.perf_counter()
    report = compare(reference, current, THREE_BODY)
    compared = time.perf_counter() - start
    render_html(report, reference, current, THREE_BODY)
    total = time.perf_counter() - start
    assert compared < 3.0, f"compare took {compared:.2f}s"
    assert total < 5.0, f"compare + render took {total:.2f}s"


# --- sampled units ----------------------------------------------------------------


def trajectories(n_units: int, longest: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows (t, x0) per unit: x0 fixed per unit, t on a grid up to a per-unit end (like stopped runs)."""
    rows, units = [], []
    for unit in range(n_units):
        t = np.arange(0.0, rng.uniform(0.5, longest), 0.05)
        rows.append(np.column_stack([t, np.full(t.size, rng.normal())]))
        units.append(np.full(t.size, unit))
    return np.vstack(rows), np.concatenate(units)


def test_feature_varying_within_units_is_tested_by_permuting_whole_units():
    rng = np.random.default_rng(20)
    alarms = 0
    for seed in range(10):
        (ref, ref_units), (cur, cur_units) = trajectories(60, 4.0, rng), trajectories(15, 4.0, rng)
        alarms += compare(ref, cur, PAIR, seed=seed, units=(ref_units, cur_units), unit_name="run").drift_detected
    assert alarms <= 1, f"{alarms}/10 false alarms"

    (ref, ref_units), (cur, cur_units) = trajectories(60, 4.0, rng), trajectories(15, 2.0, rng)
    report = compare(ref, cur, PAIR, units=(ref_units, cur_units), unit_name="run")
    assert ("ks_pvalue", ("x",)) in {(c.name, c.features) for c in report.tests if not c.passed}
    ks = next(c for c in report.tests if c.name == "ks_pvalue" and c.features == ("x",))
    assert "permutations of whole runs" in ks.reason
    # x is constant within each run: tested on one row per run, so no pair or energy test needs a second one
    assert [c.features for c in report.tests] == [("x",), ("x",), ("y",), ("y",)]
    assert report.n_reference_units == 60 and report.n_current_units == 15


def test_feature_on_the_same_grid_in_every_unit_is_noted_not_tested():
    grid = np.arange(10.0)
    ref = np.column_stack([np.tile(grid, 30), np.repeat(np.arange(30.0), 10)])
    cur = np.column_stack([np.tile(grid, 5), np.repeat(np.arange(5.0) + 0.5, 10)])
    units = (np.repeat(np.arange(30), 10), np.repeat(np.arange(5), 10))
    report = compare(ref, cur, ["t", "x"], units=units, unit_name="simulation")
    assert {c.features for c in report.checks} == {("x",)}
    (note,) = report.notes
    assert note.startswith("t takes the same 10 values in every simulation on both sides (a fixed grid)")
    assert report.error_control.startswith("2 tests at family-wise alpha 0.05 (Holm), each on simulations")
    only_grid = compare(ref[:, :1], cur[:, :1], ["t"], units=units, unit_name="simulation")
    assert only_grid.tests == [] and not only_grid.drift_detected and len(only_grid.notes) == 1


@pytest.mark.parametrize("n_reference, n_current", [(4, 3), (2, 5), (6, 1)])
def test_range_exceedance_pvalue_matches_enumeration(n_reference, n_current):
    """Every placement of the reference values among the pooled ranks is equally likely under no drift."""
    total = n_reference + n_current
    outside = []
    for places in combinations(range(total), n_reference):
        outside.append(places[0] + (total - 1 - places[-1]))
    for k in range(n_current + 1):
        expected = np.mean(np.array(outside) >= k)
        assert range_exceedance_pvalue(k, n_reference, n_current) == pytest.approx(expected)


@pytest.mark.parametrize(
    "units, message",
    [
        ((np.arange(10), np.arange(9)), r"current units must be 1-D with one id per row \(10\)"),
        ((np.zeros(10), np.arange(10)), "reference needs at least 2 units, got 1"),
    ],
)
def test_bad_units_raise_value_error(units, message):
    with pytest.raises(ValueError, match=message):
        compare(np.arange(20.0).reshape(10, 2), np.arange(20.0).reshape(10, 2), PAIR, units=units)


def test_load_dataset_reads_units_and_names_a_missing_column(tmp_path):
    path = tmp_path / "rows.npz"
    np.savez(path, inputs=np.ones((4, 2)), simulation=np.array([0, 0, 1, 1]))
    inputs, units = load_dataset(path, "simulation")
    assert inputs.shape == (4, 2) and units.tolist() == [0, 0, 1, 1]
    assert load_dataset(path, "")[1] is None
    with pytest.raises(ValueError, match=r"no unit column 'run'; its arrays are \['inputs', 'simulation'\]"):
        load_dataset(path, "run")


def test_component_keeps_rows_independent_by_default_and_documents_unit_column(tmp_path):
    from kfp import compiler

    from ..component import validate_data

    path = tmp_path / "validate.yaml"
    compiler.Compiler().compile(validate_data, str(path))
    spec = yaml.safe_load(path.read_text())
    unit_column = spec["root"]["inputDefinitions"]["parameters"]["unit_column"]
    assert unit_column["defaultValue"] == "" and unit_column["isOptional"]
    assert "sampled unit of each row" in unit_column["description"]


def test_component_tests_three_body_datasets_per_simulation(tmp_path):
    from types import SimpleNamespace

    from kfp.dsl import Metrics

    from components.three_body import dataset
    from components.three_body.simulate import sample_initial_x2
    from components.validation.tests.calibration import three_body_rows

    from ..component import validate_data

    x2 = sample_initial_x2(60, 0)
    for name, part, ids in (("training", x2[:50], np.arange(50)), ("held_out", x2[50:], np.arange(50, 60))):
        inputs, local_ids = three_body_rows(part, 100)
        rows = dataset.TrajectoryRows(inputs, np.zeros((len(inputs), 4)), ids[local_ids])
        dataset.save(tmp_path / f"{name}.npz", rows)
    outputs = {name: SimpleNamespace(path=str(tmp_path / name)) for name in ("summary", "report")}
    metrics = Metrics()
    passed = validate_data.python_func(
        reference=SimpleNamespace(path=str(tmp_path / "training.npz")),
        current=SimpleNamespace(path=str(tmp_path / "held_out.npz")),
        feature_names="t, x2x, x2y",
        title="Training vs held-out simulations",
        alpha=0.05,
        metrics=metrics,
        unit_column="simulation",
        see_also="the gather step's <data map>",
        **outputs,
    )
    summary = (tmp_path / "summary").read_text()
    assert passed is True and "No drift detected: all 6 tests passed." in summary
    assert summary.endswith("**See also:** the gather step's <data map>\n")
    assert "<b>See also:</b> the gather step&#x27;s &lt;data map&gt;</p></body>" in (tmp_path / "report").read_text()
    assert "Reference: 5,000 rows from 50 simulations. Current: 1,000 rows from 10 simulations." in summary
    assert metrics.metadata == {"drift_detected": 0.0, "failed_tests": 0.0, "tests": 6.0}
