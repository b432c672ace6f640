"""How large a hole a dropped initial condition leaves: the measurement behind coverage.HOLE_RADIUS.

python tests/benchmarks/bench_hole_radius.py [--simulations 2000 10000] [--fresh 3000] [--t-max 3.9]

1. Neighbours: points at distance d from dropped and from kept initial conditions; how often their
   own simulation is dropped, against the overall rate.
2. Flagging: holes of radius r around the dropped runs of `--simulations` draws (seed 0), applied
   to `--fresh` new draws (seed 7): the share of fresh dropped runs flagged (recall), of fresh kept
   runs flagged (the plane lost to the flag), and of flagged draws that are dropped (precision).
About 5 minutes on one core for 10,000 simulations to t = 3.9.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.three_body.coverage import Dropped, holes
from components.three_body.live import in_region
from components.three_body.simulate import sample_initial_x2, simulate

DISTANCES = (0.0005, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
RADII = (0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05)


def ring(centres: np.ndarray, distance: float, rng: np.random.Generator, per_centre: int = 6) -> np.ndarray:
    angles = rng.uniform(0, 2 * np.pi, (len(centres), per_centre))
    points = (centres[:, None, :] + distance * np.stack([np.cos(angles), np.sin(angles)], axis=-1)).reshape(-1, 2)
    return points[in_region(points)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--simulations", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--fresh", type=int, default=3000)
    parser.add_argument("--t-max", type=float, default=3.9)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    fresh = sample_initial_x2(args.fresh, 7)
    fresh_dropped = ~simulate(fresh, args.t_max).converged
    print(f"fresh draws: {fresh_dropped.sum()}/{len(fresh)} dropped")
    for n in args.simulations:
        x2 = sample_initial_x2(n, 0)
        result = simulate(x2, args.t_max)
        dropped = Dropped(result.dropped_x2, result.status[~result.converged])
        print(f"{n} simulations: {len(dropped.x2)} dropped ({len(dropped.x2) / n:.1%})")
        if n == args.simulations[0]:
            for distance in DISTANCES:
                rates = []
                for centres in (dropped.x2, x2[result.converged]):
                    picked = centres[rng.permutation(len(centres))[:40]]
                    rates.append(float(np.mean(~simulate(ring(picked, distance, rng), args.t_max).converged)))
                print(f"  {distance:g} from a dropped run: {rates[0]:.2f} dropped; from a kept one: {rates[1]:.2f}")
        for radius in RADII:
            flagged = holes(dropped, radius).inside(fresh)
            print(
                f"  radius {radius:g}: flags {flagged[fresh_dropped].mean():.2f} of fresh dropped, "
                f"{flagged[~fresh_dropped].mean():.3f} of fresh kept; "
                f"{fresh_dropped[flagged].mean():.2f} of flagged dropped"
            )


if __name__ == "__main__":
    main()
