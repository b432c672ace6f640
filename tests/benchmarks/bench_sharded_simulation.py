"""Sharded vs single-process three-body simulation: wall time, and that the rows are the same.

The pipeline simulates in shards (one pod each on a cluster); here the shards run in a pool of
local processes, as many as `--workers`, against one process simulating everything.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_sharded_simulation.py
    .venv/bin/python tests/benchmarks/bench_sharded_simulation.py --simulations 2000 --shard-size 250
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from components.three_body import dataset  # noqa: E402
from components.three_body.shards import Shard, gather, shard_starts, simulate_shard  # noqa: E402
from components.three_body.simulate import sample_initial_x2, simulate  # noqa: E402


def one_shard(args: tuple[int, int, int, float, int]) -> Shard:
    return simulate_shard(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--t-max", type=float, default=3.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    x2 = sample_initial_x2(args.simulations, args.seed)
    single = dataset.to_rows(simulate(x2, args.t_max), x2)
    single_seconds = time.perf_counter() - started
    print(f"one process: {args.simulations} simulations to t = {args.t_max:g} in {single_seconds:.1f} s", flush=True)

    starts = shard_starts(args.simulations, args.shard_size)
    started = time.perf_counter()
    work = [(start, args.shard_size, args.simulations, args.t_max, args.seed) for start in starts]
    with ProcessPoolExecutor(args.workers) as pool:
        shards = list(pool.map(one_shard, work))
    gathered = gather(shards, 0.1, args.seed)
    sharded_seconds = time.perf_counter() - started
    print(
        f"{len(starts)} shards of {args.shard_size} on {args.workers} worker(s): {sharded_seconds:.1f} s "
        f"({single_seconds / sharded_seconds:.2f}x)",
        flush=True,
    )

    rows = np.concatenate([gathered.training.simulation, gathered.validation.simulation])
    same_runs = np.array_equal(np.unique(rows), np.unique(single.simulation))
    both = dataset.TrajectoryRows(
        np.concatenate([gathered.training.inputs, gathered.validation.inputs]),
        np.concatenate([gathered.training.targets, gathered.validation.targets]),
        rows,
    )
    order = np.lexsort((both.inputs[:, 0], both.simulation))
    largest = float(np.abs(both.targets[order] - single.targets).max()) if same_runs else float("nan")
    print(f"same converged runs: {same_runs}; largest position difference to one process: {largest:.1e}")


if __name__ == "__main__":
    main()
