"""Peak memory and CPU of every pipeline task, measured while `python -m pipelines run` runs them.

kfp's local runner starts each task as a `kfp.dsl.executor_main` process; this samples /proc for
those processes (peak resident memory, VmHWM, is kept by the kernel, so sampling misses nothing
of it) and prints, per component, the peak resident memory, CPU seconds, wall seconds and CPU
cores used on average: the figures `pipelines/controls.py` sizes the pods from.

    .venv/bin/python tests/benchmarks/bench_task_resources.py                # sum, three-body local
    .venv/bin/python tests/benchmarks/bench_task_resources.py --pipeline sum
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"sum": ["sum"], "three-body": ["three-body", "--preset", "local"]}
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class TaskUsage:
    peak_rss_mib: float = 0.0
    cpu_seconds: dict[int, float] = field(default_factory=dict)  # by pid: a component may run twice
    first_seen: float = 0.0
    last_seen: float = 0.0


def executor_function(pid: int) -> str | None:
    """The component function a kfp executor process runs, or None for any other process."""
    try:
        args = (Path(f"/proc/{pid}/cmdline").read_bytes()).split(b"\0")
    except OSError:
        return None
    if b"kfp.dsl.executor_main" not in args or not args[0].split(b"/")[-1].startswith(b"python"):
        return None
    for flag, value in zip(args, args[1:], strict=False):
        if flag == b"--function_to_execute":
            return value.decode()
    return None


def sample(usage: dict[str, TaskUsage]) -> None:
    now = time.monotonic()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        function = executor_function(pid)
        if function is None:
            continue
        try:
            status = (entry / "status").read_text()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        task = usage.setdefault(function, TaskUsage(first_seen=now))
        hwm_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        task.peak_rss_mib = max(task.peak_rss_mib, hwm_kib / 1024)
        task.cpu_seconds[pid] = (int(stat[11]) + int(stat[12])) / TICKS  # utime + stime
        task.last_seen = now


def measure(pipeline: str, params: list[str]) -> dict[str, TaskUsage]:
    command = [sys.executable, "-m", "pipelines", "run", *RUNS[pipeline]]
    for param in params:
        command += ["--param", param]
    usage: dict[str, TaskUsage] = {}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while process.poll() is None:
        sample(usage)
        time.sleep(0.1)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-3000:]}")
    return usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", choices=sorted(RUNS), action="append")
    parser.add_argument("--param", action="append", default=[], help="passed to every run")
    args = parser.parse_args()
    print("| pipeline | task | peak RSS (MiB) | CPU s | wall s | cores used |")
    print("|---|---|---:|---:|---:|---:|")
    for pipeline in args.pipeline or list(RUNS):
        for function, task in sorted(measure(pipeline, args.param).items()):
            cpu = sum(task.cpu_seconds.values())
            wall = max(task.last_seen - task.first_seen, 0.1)
            print(
                f"| {pipeline} | {function} | {task.peak_rss_mib:,.0f} | {cpu:.1f} | {wall:.1f} | {cpu / wall:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
