"""Benchmark the vectorized three-body simulator: converged fractions, accuracy and speed against scipy.

python tests/benchmarks/bench_three_body_simulation.py [--simulations N ...] [--t-max T ...]
    [--scipy-sample M] [--check-sample K] [--json FILE]

For every batch size N and horizon T it integrates N of Breen's initial conditions
with `simulate` and prints:
- the converged fraction by the simulator's criterion (largest twin-run position
  difference over the run) and by Breen's (phase-space distance at the end below
  0.1) on the same runs, with the failure counts;
- the independent check: the largest position error over the run of K kept runs
  against scipy DOP853 at rtol = atol = 1e-13;
- the throughput ratio: simulations per second of the batch over scipy DOP853 at
  rtol = atol = 1e-11 run one by one on the first M initial conditions, timed in
  the same process right after the batch, so load from other processes hits both;
  and over scipy doing the same work (both twin runs, at the simulator's returned
  and check tolerances), which a single run at 1e-11 understates about twofold.

On a shared machine set OPENBLAS_NUM_THREADS=1: the vectorized run spends much
of its time in BLAS calls, and BLAS threads that lose their core to another
process slow it down by half. The load average is printed to show contention.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.three_body.simulate import (
    DEFAULT_CHECK_RTOL_FACTOR,
    DEFAULT_MAX_DIVERGENCE,
    REFERENCE_RTOL,
    Status,
    default_rtol,
    independent_check,
    reference_solution,
    sample_initial_x2,
    simulate,
)

SCIPY_TOL = 1e-11
NEAR_AXIS_Y = 0.15  # dropped runs gather near the x axis, closest to the singular start (-0.5, 0)


def run_case(n: int, t_max: float, scipy_sample: int, check_sample: int, seed: int) -> dict[str, object]:
    x2 = sample_initial_x2(n, seed)
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    result = simulate(x2, t_max)
    vector_wall = time.perf_counter() - start

    subset = x2[:scipy_sample]
    start = time.perf_counter()
    for row in subset:
        reference_solution(row, t_max, rtol=SCIPY_TOL, atol=SCIPY_TOL)
    scipy_wall = time.perf_counter() - start

    twin_tolerances = (default_rtol(t_max), DEFAULT_CHECK_RTOL_FACTOR * default_rtol(t_max))
    start = time.perf_counter()
    for row in subset:
        for tol in twin_tolerances:
            reference_solution(row, t_max, rtol=tol, atol=tol, separations=True)
    same_work_wall = time.perf_counter() - start

    kept = np.flatnonzero(result.converged)
    sample = np.random.default_rng(seed).choice(kept, size=min(check_sample, len(kept)), replace=False)
    errors = independent_check(result, np.sort(sample))

    vector_rate = n / vector_wall
    scipy_rate = len(subset) / scipy_wall
    near_axis = x2[:, 1] < NEAR_AXIS_Y
    return {
        "n": n,
        "t_max": t_max,
        "seed": seed,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "vectorized": {
            "wall_seconds": vector_wall,
            "sims_per_second": vector_rate,
            "converged_fraction": float(result.converged.mean()),
            "breen_converged_fraction": float(result.breen_converged.mean()),
            "status_counts": {s.name.lower(): int(np.sum(result.status == s)) for s in Status},
            "median_accepted_steps": float(np.median(result.steps)),
            "max_accepted_steps": int(result.steps.max()),
            "dropped_rate_near_axis": float(np.mean(~result.converged[near_axis])),
            "dropped_rate_elsewhere": float(np.mean(~result.converged[~near_axis])),
        },
        "scipy_dop853": {"rtol": SCIPY_TOL, "sims": len(subset), "wall_seconds": scipy_wall},
        "throughput_ratio": vector_rate / scipy_rate,
        "scipy_same_work": {"rtols": twin_tolerances, "wall_seconds": same_work_wall},
        "same_work_ratio": vector_rate / (len(subset) / same_work_wall),
        "independent_check": {
            "reference_rtol": REFERENCE_RTOL,
            "runs": len(errors),
            "max_position_error": float(errors.max()) if len(errors) else float("nan"),
            "median_position_error": float(np.median(errors)) if len(errors) else float("nan"),
            "over_bound": int(np.sum(~(errors <= DEFAULT_MAX_DIVERGENCE))),
        },
    }


def _print_case(case: dict) -> None:
    vector, scipy_run, check = case["vectorized"], case["scipy_dop853"], case["independent_check"]
    load = case["load_average_1min"]
    print(
        f"== n={case['n']} t_max={case['t_max']:g} seed={case['seed']} "
        f"(1-min load {load['before']:.2f} before, {load['after']:.2f} after)"
    )
    print(
        f"converged: {vector['converged_fraction']:.1%} by the max criterion (<= {DEFAULT_MAX_DIVERGENCE:g}), "
        f"{vector['breen_converged_fraction']:.1%} by Breen's (phase-space distance < 0.1)"
    )
    print("  status: " + ", ".join(f"{k}={v}" for k, v in vector["status_counts"].items()))
    print(
        f"  dropped: {vector['dropped_rate_near_axis']:.1%} of runs with x2y < {NEAR_AXIS_Y:g}, "
        f"{vector['dropped_rate_elsewhere']:.1%} elsewhere"
    )
    print(
        f"vectorized: {vector['wall_seconds']:.1f} s for {case['n']} sims, {vector['sims_per_second']:.2f} sims/s, "
        f"accepted steps median {vector['median_accepted_steps']:.0f}, max {vector['max_accepted_steps']}"
    )
    print(
        f"scipy DOP853 rtol=atol={scipy_run['rtol']:g}: {scipy_run['wall_seconds']:.1f} s "
        f"for {scipy_run['sims']} sims; "
        f"throughput ratio {case['throughput_ratio']:.1f}x"
    )
    same = case["scipy_same_work"]
    print(
        f"scipy DOP853 doing the same work (twin runs at rtol {same['rtols'][0]:g} and {same['rtols'][1]:g}, "
        f"separation state): {same['wall_seconds']:.1f} s; ratio {case['same_work_ratio']:.1f}x"
    )
    print(
        f"independent check vs scipy DOP853 rtol=atol={check['reference_rtol']:g} on {check['runs']} kept runs: "
        f"largest position error median {check['median_position_error']:.1e}, max {check['max_position_error']:.1e}, "
        f"over {DEFAULT_MAX_DIVERGENCE:g}: {check['over_bound']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulations", type=int, nargs="+", default=[200, 10_000], help="batch sizes")
    parser.add_argument("--t-max", type=float, nargs="+", default=[3.9, 10.0], help="horizons")
    parser.add_argument("--scipy-sample", type=int, default=20, help="simulations timed one by one with scipy")
    parser.add_argument("--check-sample", type=int, default=10, help="kept runs checked against the reference")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if min(args.simulations) < 1 or not 0 < args.scipy_sample <= min(args.simulations):
        parser.error("--scipy-sample must be in 1..min(--simulations)")

    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")
    cases = []
    for t_max in args.t_max:
        for n in args.simulations:
            cases.append(run_case(n, t_max, args.scipy_sample, args.check_sample, args.seed))
            _print_case(cases[-1])
    if args.json is not None:
        args.json.write_text(json.dumps(cases, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
