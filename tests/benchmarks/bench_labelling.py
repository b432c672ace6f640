"""What labelling live three-body traffic costs: simulations per second through the spec's hook.

python tests/benchmarks/bench_labelling.py [--x2 N] [--per-x2 K] [--t-max T ...]

N distinct initial conditions from Breen's region, K queries each at random t in [0, T]: the
labelling simulates each x2 once (reruns a failed one to its own latest t) and reads every t off
the trajectory, so its cost is simulations, not queries. Prints the load average: on a shared
machine the rate falls with the neighbours' load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.registry import model_spec
from components.three_body.simulate import sample_initial_x2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--x2", type=int, default=100)
    parser.add_argument("--per-x2", type=int, default=5)
    parser.add_argument("--t-max", type=float, nargs="+", default=[1.0, 3.9])
    args = parser.parse_args()
    labelling = model_spec("three-body").labelling
    assert labelling is not None
    rng = np.random.default_rng(0)
    x2 = np.repeat(sample_initial_x2(args.x2, 7), args.per_x2, axis=0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for t_max in args.t_max:
        queries = np.column_stack([rng.uniform(0, t_max, len(x2)), x2])
        started = time.perf_counter()
        result = labelling.label(queries)
        seconds = time.perf_counter() - started
        print(
            f"t <= {t_max:g}: {len(queries)} queries, {result.computations} simulations in {seconds:.2f} s: "
            f"{result.computations / seconds:.1f} simulations/s, {len(queries) / seconds:.0f} queries/s; "
            f"{int((~result.labelled).sum())} queries not labelled (did not converge)"
        )


if __name__ == "__main__":
    main()
