"""The verdict's error rates, measured: at most alpha false alarms, at least 95% detections.

Twenty fixed seeds per case. On one distribution the alarms are Binomial(20, p) with
p <= alpha = 0.05, so at most 2 is the bound (P(<= 2) = 0.92 at p = 0.05, 0.21 at p = 0.2,
0.035 at p = 0.3): one alarm more than alpha * 20 is binomial slack, not tolerance for a
verdict that alarms often. A real shift must be found in at least 19 of 20 seeds (95%).
The rates over 100 seeds: tests/benchmarks/bench_drift_checks.py.
"""

from __future__ import annotations

import pytest

from components.validation.tests.calibration import alarm_rate, sum_report, three_body_report

SEEDS = range(20)
MAX_FALSE_ALARMS = 2
MIN_DETECTIONS = 19


def test_three_body_training_vs_held_out_from_one_distribution_rarely_alarms():
    alarms, runs = alarm_rate(lambda seed: three_body_report("same", seed), SEEDS)
    assert alarms <= MAX_FALSE_ALARMS, f"{alarms}/{runs} false alarms"


def test_three_body_held_out_from_half_of_breens_region_is_detected():
    detections, runs = alarm_rate(lambda seed: three_body_report("half-region", seed), SEEDS)
    assert detections >= MIN_DETECTIONS, f"{detections}/{runs} detected"


def test_row_level_tests_would_alarm_on_one_distribution():
    """Why units matter: ~1,000 rows per simulation taken as independent make every check 'find' drift."""
    report = three_body_report("same", seed=0, t_points=200)
    assert not report.drift_detected, report.reasons
    assert report.n_current_units == 16 and report.n_reference_units == 140
    ks = next(c for c in report.checks if c.name == "ks_pvalue" and c.features == ("x2x",))
    assert "16 current vs 140 reference simulations" in ks.reason
    assert three_body_report("same", seed=0, t_points=200, by_simulation=False).drift_detected


@pytest.mark.parametrize(
    "case, expect_alarm",
    [("same", False), ("equal-pairs", True), ("wider-range", True)],
)
def test_sum_pipeline_checks_alarm_within_alpha_and_detect_its_shifts(case, expect_alarm):
    alarms, runs = alarm_rate(lambda seed: sum_report(case, seed, training=500, current=200), SEEDS)
    if expect_alarm:
        assert alarms >= MIN_DETECTIONS, f"{case}: {alarms}/{runs} detected"
    else:
        assert alarms <= MAX_FALSE_ALARMS, f"{case}: {alarms}/{runs} false alarms"
