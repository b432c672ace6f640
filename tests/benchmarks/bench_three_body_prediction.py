"""Time per prediction: Breen's network against the integrators it replaces, per query.

A query is "where are the bodies at time t, for body 2 starting at x2": the network answers it
in one forward pass; an integrator must integrate from 0 to t. The network's speed does not
depend on its weights, so an untrained network of the paper's shape is timed (its accuracy is
measured by the pipeline's evaluation, on held-out simulations).

    python tests/benchmarks/bench_three_body_prediction.py [--queries 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from components import saved_model
from components.three_body.model import ThreeBodyTrainingConfig, build_network
from components.three_body.simulate import reference_solution, sample_initial_x2, simulate


def median_seconds(call, repeats: int) -> float:
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return float(np.median(durations))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20, help="integrator queries to time")
    parser.add_argument("--t-max", type=float, default=3.9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    x2 = sample_initial_x2(args.queries, seed=42)
    rng = np.random.default_rng(0)
    queries = np.column_stack([rng.uniform(0, args.t_max, args.queries), x2])

    with tempfile.TemporaryDirectory() as folder:
        saved_model.export(build_network(ThreeBodyTrainingConfig()), Path(folder) / "ann")
        predict = saved_model.load(Path(folder) / "ann")
        predict(queries[:1])  # trace once
        ann_single = float(np.median([median_seconds(lambda q=q: predict(q[None, :]), 5) for q in queries]))
        batch = np.repeat(queries, 5000 // len(queries) + 1, axis=0)[:5000]
        ann_batched = median_seconds(lambda: predict(batch), 5) / len(batch)

    scipy_per_query = float(
        np.median(
            [
                median_seconds(lambda q=q: reference_solution(q[1:], max(q[0], 1 / 256), rtol=1e-11, atol=1e-11), 1)
                for q in queries
            ]
        )
    )
    vectorized_per_query = float(
        np.median([median_seconds(lambda q=q: simulate(q[None, 1:], max(q[0], 1 / 256)), 1) for q in queries])
    )

    figures = {
        "ann_seconds_single": ann_single,
        "ann_seconds_batched_per_query": ann_batched,
        "scipy_dop853_seconds_per_query": scipy_per_query,
        "vectorized_integrator_seconds_per_query": vectorized_per_query,
        "speedup_single_vs_scipy": scipy_per_query / ann_single,
        "speedup_batched_vs_scipy": scipy_per_query / ann_batched,
    }
    print(f"{'predictor':<44}{'seconds per query':>20}")
    print(f"{'ANN, one query per call':<44}{ann_single:>20.3e}")
    print(f"{'ANN, batches of 5000':<44}{ann_batched:>20.3e}")
    print(f"{'scipy DOP853 rtol 1e-11, one simulation':<44}{scipy_per_query:>20.3e}")
    print(f"{'vectorized DOP853, one simulation':<44}{vectorized_per_query:>20.3e}")
    print(
        f"ANN speed-up over scipy: {figures['speedup_single_vs_scipy']:,.0f}x single, "
        f"{figures['speedup_batched_vs_scipy']:,.0f}x batched (Breen et al.: ~1e5 on average)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
