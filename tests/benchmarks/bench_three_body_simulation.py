"""Benchmark the vectorized three-body simulator against per-simulation scipy DOP853.

python tests/benchmarks/bench_three_body_simulation.py [--n N] [--reference-n M] [--json FILE]

Both integrators start from the same Breen initial conditions. Throughput is
simulations per wall-clock second; accuracy is the median over time of the
largest body-position error against scipy at rtol = atol = 1e-12, summarised
over the first M initial conditions that the vectorized run marks converged.

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
    Status,
    position_error,
    reference_solution,
    sample_initial_x2,
    simulate,
)

SCIPY_TOL = 1e-11
REFERENCE_TOL = 1e-12
ACCURACY_TARGET = 1e-6


def _median_errors(runs: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per-simulation median over time of the position error; NaN where either run failed."""
    return np.median(position_error(runs, references), axis=-1)


def _summary(errors: np.ndarray) -> dict[str, float | int]:
    finite = errors[np.isfinite(errors)]
    return {
        "median": float(np.median(finite)) if len(finite) else float("nan"),
        "max": float(np.max(finite)) if len(finite) else float("nan"),
        "over_target": int(np.sum(finite > ACCURACY_TARGET)),
        "count": len(finite),
    }


def run(n: int, reference_n: int, t_max: float, seed: int) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    x2 = sample_initial_x2(n, seed)
    subset = x2[:reference_n]

    start = time.perf_counter()
    result = simulate(x2, t_max)
    vector_wall = time.perf_counter() - start

    start = time.perf_counter()
    scipy_runs = np.stack([reference_solution(row, t_max, rtol=SCIPY_TOL, atol=SCIPY_TOL) for row in subset])
    scipy_wall = time.perf_counter() - start

    references = np.stack([reference_solution(row, t_max, rtol=REFERENCE_TOL, atol=REFERENCE_TOL) for row in subset])
    converged = result.converged[:reference_n]
    vector_errors = _median_errors(result.positions[:reference_n], references)
    scipy_errors = _median_errors(scipy_runs, references)

    vector_rate = n / vector_wall
    scipy_rate = reference_n / scipy_wall
    return {
        "n": n,
        "reference_n": reference_n,
        "t_max": t_max,
        "seed": seed,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "vectorized": {
            "wall_seconds": vector_wall,
            "sims_per_second": vector_rate,
            "converged_fraction": float(result.converged.mean()),
            "status_counts": {s.name.lower(): int(np.sum(result.status == s)) for s in Status},
            "median_accepted_steps": float(np.median(result.steps)),
        },
        "scipy_dop853": {"rtol": SCIPY_TOL, "wall_seconds": scipy_wall, "sims_per_second": scipy_rate},
        "speedup": vector_rate / scipy_rate,
        "accuracy_vs_reference": {
            "reference_rtol": REFERENCE_TOL,
            "subset_converged": int(converged.sum()),
            "vectorized": _summary(vector_errors[converged]),
            "scipy_dop853_same_sims": _summary(scipy_errors[converged]),
            "scipy_dop853_all_subset": _summary(scipy_errors),
        },
    }


def _print_report(report: dict) -> None:
    vector, scipy_run, accuracy = report["vectorized"], report["scipy_dop853"], report["accuracy_vs_reference"]
    load = report["load_average_1min"]
    print(f"initial conditions: n={report['n']} seed={report['seed']} t_max={report['t_max']}")
    print(
        f"OPENBLAS_NUM_THREADS={report['blas_threads']}, "
        f"1-min load average {load['before']:.2f} before, {load['after']:.2f} after"
    )
    print(
        f"vectorized simulate: {vector['wall_seconds']:.1f} s wall for {report['n']} sims, "
        f"{vector['sims_per_second']:.1f} sims/s, converged {vector['converged_fraction']:.1%}"
    )
    print("  status: " + ", ".join(f"{k}={v}" for k, v in vector["status_counts"].items()))
    print(
        f"scipy DOP853 rtol=atol={scipy_run['rtol']:g}: {scipy_run['wall_seconds']:.1f} s wall for "
        f"{report['reference_n']} sims, {scipy_run['sims_per_second']:.2f} sims/s"
    )
    print(f"speedup (throughput ratio): {report['speedup']:.1f}x")
    print(
        f"accuracy vs scipy rtol=atol={accuracy['reference_rtol']:g}, per-sim median position error "
        f"over the {accuracy['subset_converged']} converged of the first {report['reference_n']}:"
    )
    for label, key in (
        ("vectorized", "vectorized"),
        ("scipy 1e-11 (same sims)", "scipy_dop853_same_sims"),
        ("scipy 1e-11 (whole subset)", "scipy_dop853_all_subset"),
    ):
        s = accuracy[key]
        print(
            f"  {label:27s} median {s['median']:.2e}  max {s['max']:.2e}  "
            f"> {ACCURACY_TARGET:g}: {s['over_target']}/{s['count']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="simulations for the vectorized run")
    parser.add_argument("--reference-n", type=int, default=40, help="simulations run one by one with scipy")
    parser.add_argument("--t-max", type=float, default=3.9)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not 0 < args.reference_n <= args.n:
        parser.error("--reference-n must be in 1..N")

    report = run(args.n, args.reference_n, args.t_max, args.seed)
    _print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
