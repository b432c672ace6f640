"""Measure the drift verdict: false alarms on one distribution, detections on a real shift.

The three-body rows are built like the pipeline's dataset (t on the 1/256 grid, x2 constant
along a simulation, a simulation id per row) without integrating: the checks only read the
inputs, and the integrator changes the targets alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from components.sum.data import SumDataSpec, generate
from components.three_body.simulate import GRID_STEP, sample_initial_x2
from components.validation.drift import DriftReport, compare

THREE_BODY_FEATURES = ("t", "x2x", "x2y")
SUM_FEATURES = ("x", "y")
THREE_BODY_CASES = ("same", "half-region")
SUM_CASES = ("same", "equal-pairs", "wider-range")


def three_body_rows(x2: np.ndarray, t_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (t, x2x, x2y) and the simulation id of each row, one block of t_points per simulation."""
    t = np.arange(t_points) * GRID_STEP
    inputs = np.column_stack([np.tile(t, len(x2)), np.repeat(x2, t_points, axis=0)])
    return inputs, np.repeat(np.arange(len(x2)), t_points)


def half_region_x2(n: int, seed: int) -> np.ndarray:
    """x2 from the right half of Breen's region (x in [-0.25, 0]): a real shift of the held-out set."""
    x2 = sample_initial_x2(4 * n + 64, seed)  # the half holds about 55% of the region
    return x2[x2[:, 0] >= -0.25][:n]


def three_body_report(
    case: str,
    seed: int,
    training: int = 140,
    held_out: int = 16,
    t_points: int = 1000,
    by_simulation: bool = True,
) -> DriftReport:
    """Training vs held-out simulations as the pipeline compares them, tested per simulation.

    ``by_simulation=False`` takes every row as an independent sample, the mistake this
    module measures the cost of.
    """
    if case not in THREE_BODY_CASES:
        raise ValueError(f"unknown three-body case {case!r}: choose one of {', '.join(THREE_BODY_CASES)}")
    x2 = sample_initial_x2(training + held_out, seed)
    held_out_x2 = x2[training:] if case == "same" else half_region_x2(held_out, seed + 1_000_000)
    reference, reference_units = three_body_rows(x2[:training], t_points)
    current, current_units = three_body_rows(held_out_x2, t_points)
    if not by_simulation:
        return compare(reference, current, THREE_BODY_FEATURES, seed=seed)
    return compare(
        reference,
        current,
        THREE_BODY_FEATURES,
        seed=seed,
        units=(reference_units, current_units),
        unit_name="simulation",
    )


def sum_report(case: str, seed: int, training: int = 2000, current: int = 500) -> DriftReport:
    """Training pairs vs serving pairs from the sum pipeline's own generator; rows are independent.

    ``equal-pairs`` is the article's training set against uniform traffic; ``wider-range``
    is traffic up to 12,000 against training up to 10,000.
    """
    if case not in SUM_CASES:
        raise ValueError(f"unknown sum case {case!r}: choose one of {', '.join(SUM_CASES)}")
    if case == "equal-pairs":
        reference, _ = generate(SumDataSpec(recipe="seed-equal-pairs"))
    else:
        reference, _ = generate(SumDataSpec(size=training, seed=seed))
    high = 12_000.0 if case == "wider-range" else 10_000.0
    serving, _ = generate(SumDataSpec(size=current, high=high, seed=seed + 1_000_000))
    return compare(reference, serving, SUM_FEATURES, seed=seed)


def alarm_rate(report: Callable[[int], DriftReport], seeds: Iterable[int]) -> tuple[int, int]:
    """(alarms, runs): how many of the seeds' reports detect drift."""
    verdicts = [report(seed).drift_detected for seed in seeds]
    return sum(verdicts), len(verdicts)
