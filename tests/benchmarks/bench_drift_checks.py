"""False-alarm and detection rates of the data-validation verdict, over many seeds.

Three-body: training vs held-out simulations at the local preset's sizes (140 and 16
simulations of 1000 time points), from one distribution ("same") and with the held-out x2
from the right half of Breen's region ("half-region"); "same, rows independent" repeats
"same" with every row taken as an independent sample, as the checks did before. Sum:
training vs evaluation pairs at the sum pipeline's sizes (20,000 and 5,000) from its own
generator: one distribution, the article's equal pairs against uniform traffic, and
traffic up to 12,000 against training up to 10,000. Each rate comes with its 95%
Clopper-Pearson interval. The unit tests check the same rates on 20 seeds.

    python tests/benchmarks/bench_drift_checks.py [--seeds 100] [--sum-training 20000] [--sum-current 5000]
                                                  [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.validation.drift import DriftReport
from components.validation.tests.calibration import alarm_rate, sum_report, three_body_report


def clopper_pearson(hits: int, runs: int) -> tuple[float, float]:
    low = stats.beta.ppf(0.025, hits, runs - hits + 1) if hits else 0.0
    high = stats.beta.ppf(0.975, hits + 1, runs - hits) if hits < runs else 1.0
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--sum-training", type=int, default=20_000)
    parser.add_argument("--sum-current", type=int, default=5_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    cases: list[tuple[str, str, str, Callable[[int], DriftReport]]] = [
        ("three-body", "same", "false alarm", lambda seed: three_body_report("same", seed)),
        (
            "three-body",
            "same, rows independent",
            "false alarm",
            lambda seed: three_body_report("same", seed, by_simulation=False),
        ),
        ("three-body", "half-region", "detection", lambda seed: three_body_report("half-region", seed)),
    ] + [
        ("sum", case, kind, lambda seed, case=case: sum_report(case, seed, args.sum_training, args.sum_current))
        for case, kind in (("same", "false alarm"), ("equal-pairs", "detection"), ("wider-range", "detection"))
    ]
    print(f"{args.seeds} seeds per case, alpha 0.05 (family-wise)")
    print(f"{'problem':<11} {'case':<24} {'rate of':<12} {'alarms':>8} {'rate':>6}  95% interval     seconds")
    results = []
    for problem, case, kind, report in cases:
        started = time.perf_counter()
        alarms, runs = alarm_rate(report, range(args.seeds))
        seconds = time.perf_counter() - started
        low, high = clopper_pearson(alarms, runs)
        print(
            f"{problem:<11} {case:<24} {kind:<12} {alarms:>4}/{runs:<3} {alarms / runs:>6.2f}  "
            f"[{low:.3f}, {high:.3f}]  {seconds:7.1f}",
            flush=True,
        )
        results.append(
            {
                "problem": problem,
                "case": case,
                "rate_of": kind,
                "alarms": alarms,
                "runs": runs,
                "rate": alarms / runs,
                "interval_95": [low, high],
                "seconds": seconds,
            }
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seeds": args.seeds,
                    "sum_training": args.sum_training,
                    "sum_current": args.sum_current,
                    "results": results,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
