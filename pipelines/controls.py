"""How a cluster runs each task: caching by intent, retries, a deadline, and resources.

Every task of every pipeline goes through `pure` or `side_effect`, so none is left to a
backend default: a KFP backend caches a task unless told otherwise, and a pod without
requests is refused in a namespace with a ResourceQuota. kfp's local runner ignores the
resources and the deadline (it honours caching only when asked and retries always).

With `IMAGE_PULL_SECRET` set when the pipelines are compiled, every task also names that
Secret (kfp-kubernetes `set_image_pull_secrets`), for a registry that needs credentials. The
committed YAML is compiled without it.

The sizes come from the peaks measured by `tests/benchmarks/bench_task_resources.py` (a
table in the README), with headroom: limits about twice the measured peak resident memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kfp import kubernetes
from kfp.dsl import PipelineTask


@dataclass(frozen=True)
class Size:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    timeout_seconds: int


# Little data: data generation, planning the shards. Measured peak: 37-80 MiB.
SMALL = Size("250m", "1", "256Mi", "512Mi", 30 * 60)
# A whole dataset in memory: validation, gathering the shards. Measured: 106-190 MiB at the local
# preset, 1.4 GiB (validate) and 2.5 GiB (gather) at the standard preset's 19M rows of 64 bytes;
# the paper's ~24M rows (10,000 runs to t = 10, 2,561 times each) are 1.5 GB a copy, and gathering
# holds two.
DATA = Size("500m", "1", "3Gi", "6Gi", 60 * 60)
# TensorFlow or KServe loaded, little else: evaluate, deploy, monitor. Measured: 52-622 MiB, and
# 866 MiB evaluating the standard preset's 956 held-out simulations (predicted in chunks).
SERVING = Size("500m", "1", "768Mi", "1536Mi", 30 * 60)
# Training: measured 592-678 MiB at the local presets, 2.9 GiB at the standard preset (19M rows
# loaded, every 2nd time fitted); the paper fits all its ~24M rows, about 5 GB with their float32
# copies. A day's deadline: the paper preset on CPU is hours.
TRAINING = Size("1", "4", "3Gi", "10Gi", 24 * 60 * 60)
# One shard: the integrator's state and its trajectories. Measured in-process (peak resident):
# 425 MiB for 1,750 simulations to t = 3.9 (the local and standard presets), 474 MiB for 500 to
# t = 10 (the paper preset).
SIMULATION = Size("1", "1", "512Mi", "1Gi", 2 * 60 * 60)

RETRIES = 3
FIRST_BACKOFF = "30s"
MAX_BACKOFF = "5m"


PULL_SECRET_VAR = "IMAGE_PULL_SECRET"


# Native thread pools size themselves by the machine's cores, not the pod's CPU limit: OpenBLAS
# (numpy's, under the simulator's step) on a 64-core node starts 64 threads in a 1-CPU pod. Two
# simulation shards side by side on 2 cores took 23 s each with the default pools, 12 s with one
# thread each (kfp's local runner passes these variables on too).
THREAD_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_threads(cpu_limit: str) -> int:
    """Threads that fit a Kubernetes CPU quantity ("1", "4", "500m"): at least one."""
    cores = float(cpu_limit[:-1]) / 1000 if cpu_limit.endswith("m") else float(cpu_limit)
    return max(1, int(cores))


def _sized(task: PipelineTask, size: Size) -> PipelineTask:
    pull_secret = os.environ.get(PULL_SECRET_VAR)
    if pull_secret:
        kubernetes.set_image_pull_secrets(task, [pull_secret])
    for variable in THREAD_POOL_VARIABLES:
        task.set_env_variable(variable, str(cpu_threads(size.cpu_limit)))
    task.set_cpu_request(size.cpu_request).set_cpu_limit(size.cpu_limit)
    task.set_memory_request(size.memory_request).set_memory_limit(size.memory_limit)
    return kubernetes.set_timeout(task, size.timeout_seconds)


def pure(task: PipelineTask, size: Size) -> PipelineTask:
    """A task whose outputs follow from its inputs alone: a cache hit is the same result."""
    return _sized(task.set_caching_options(True), size)


def side_effect(task: PipelineTask, size: Size) -> PipelineTask:
    """A task that reads the clock, the traffic log, the champion or the serving record, or deploys.

    Never cached (a cache hit would reuse yesterday's answer or deploy nothing); retried with
    backoff, since what it touches (the store, the cluster API) has transient failures.
    """
    task.set_caching_options(False)
    task.set_retry(RETRIES, backoff_duration=FIRST_BACKOFF, backoff_factor=2.0, backoff_max_duration=MAX_BACKOFF)
    return _sized(task, size)
