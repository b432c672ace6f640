"""The committed YAML read as a KFP backend reads it: what a run from the UI or a schedule would do.

kfp's local runner ignores most of this (resources, deadlines, the cluster's cache), so a green
local run proves nothing about it; these tests read the spec itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from pipelines.controls import cpu_threads
from pipelines.registry import compiled_path, registry

NAMES = list(registry())
# Tasks that read the clock, the traffic log, the champion or the serving record, or deploy; and the
# monitor's nested sum pipeline, which deploys.
SIDE_EFFECTS = {
    "collect-traffic",
    "collect-served-queries",
    "evaluate-sum-model",
    "evaluate-three-body-model",
    "deploy-model",
    "sum",
}
# Tasks that talk to the object store or the cluster API: transient failures are retried.
RETRIED = {
    "collect-traffic",
    "collect-served-queries",
    "evaluate-sum-model",
    "evaluate-three-body-model",
    "deploy-model",
}


def documents(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, kubernetes platform spec) of a compiled pipeline."""
    docs = list(yaml.safe_load_all(compiled_path(name).read_text()))
    spec = next(d for d in docs if "pipelineInfo" in d)
    platform = next(d for d in docs if "platforms" in d)["platforms"]["kubernetes"]["deploymentSpec"]
    return spec, platform


def tasks(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every task of every DAG (root, conditions, loops, nested pipelines) with its component name."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for task in dag["tasks"].values():
            yield task["componentRef"]["name"].removeprefix("comp-"), task


def container_tasks(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for component, task in tasks(spec):
        if "executorLabel" in spec["components"][f"comp-{component}"]:
            yield component, task


def base(component: str) -> str:
    """`deploy-model-2` -> `deploy-model`: the compiler numbers a component used twice."""
    head, _, tail = component.rpartition("-")
    return head if tail.isdigit() else component


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_a_clusters_never_this_machines(name):
    spec, _ = documents(name)
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for key, parameter in parameters.items():
        default = str(parameter.get("defaultValue", ""))
        assert "127.0.0.1" not in default and "localhost" not in default, (name, key, default)
    if "deploy_target" in parameters:
        assert parameters["deploy_target"]["defaultValue"] == "kserve"
    assert "127.0.0.1" not in compiled_path(name).read_text().replace("127.0.0.1:8080/v2", "")


@pytest.mark.parametrize("name", NAMES)
def test_caching_follows_intent(name):
    spec, _ = documents(name)
    seen = set()
    for component, task in tasks(spec):
        if "cachingOptions" not in task:
            continue  # a condition or loop: the tasks inside carry their own setting
        cached = task["cachingOptions"].get("enableCache", False)
        seen.add(base(component))
        if base(component) in SIDE_EFFECTS:
            assert not cached, f"{name}: {component} has a side effect but a cluster would cache it"
        else:
            assert cached, f"{name}: {component} is pure but not cached"
    assert seen & SIDE_EFFECTS, name


@pytest.mark.parametrize("name", NAMES)
def test_store_and_cluster_steps_retry_with_backoff(name):
    spec, _ = documents(name)
    for component, task in container_tasks(spec):
        if base(component) in RETRIED:
            policy = task.get("retryPolicy", {})
            assert policy.get("maxRetryCount", 0) >= 2 and policy.get("backoffDuration"), (name, component)


@pytest.mark.parametrize("name", NAMES)
def test_every_pod_is_sized_and_has_a_deadline(name):
    spec, platform = documents(name)
    for executor, body in spec["deploymentSpec"]["executors"].items():
        resources = body["container"].get("resources", {})
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert key in resources, (name, executor, key)
        assert resources["memoryRequest"] <= resources["memoryLimit"], (name, executor)
        assert int(platform["executors"][executor]["activeDeadlineSeconds"]) > 0, (name, executor)


@pytest.mark.parametrize("name", NAMES)
def test_native_thread_pools_fit_the_pods_cpu_limit(name):
    spec, _ = documents(name)
    for executor, body in spec["deploymentSpec"]["executors"].items():
        env = {variable["name"]: variable["value"] for variable in body["container"].get("env", [])}
        threads = str(cpu_threads(body["container"]["resources"]["resourceCpuLimit"]))
        assert env.get("OPENBLAS_NUM_THREADS") == env.get("OMP_NUM_THREADS") == threads, (name, executor, env)


def test_cpu_threads_reads_kubernetes_quantities():
    assert [cpu_threads(q) for q in ("1", "4", "500m", "2500m", "0.5")] == [1, 4, 1, 2, 1]


@pytest.mark.parametrize("name", NAMES)
def test_the_run_form_describes_every_parameter_and_input(name):
    spec, _ = documents(name)
    for key, parameter in spec["root"]["inputDefinitions"]["parameters"].items():
        assert parameter.get("description"), f"{name}: pipeline parameter {key} has no description"
    for component_name, component in spec["components"].items():
        if "executorLabel" not in component:
            continue
        definitions = component.get("inputDefinitions", {})
        for kind in ("parameters", "artifacts"):
            for key, value in definitions.get(kind, {}).items():
                assert value.get("description"), f"{name}: {component_name} input {key} has no description"


def test_three_body_simulates_in_parallel_shards_and_can_train_on_an_accelerator():
    spec, _ = documents("three-body")
    loops = [c for c in spec["components"].values() if "dag" in c and "parameterIterator" in str(c)]
    root_tasks = spec["root"]["dag"]["tasks"]
    (loop,) = [t for t in root_tasks.values() if "parameterIterator" in t]
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("plan-simulation-shards-Output")
    assert loops or loop
    gather = root_tasks["gather-three-body-simulations"]
    assert "simulate-three-body-shard" in str(gather["inputs"]["artifacts"]["shards"])  # dsl.Collected
    trainers = [e for n, e in spec["deploymentSpec"]["executors"].items() if n.startswith("exec-train-three-body")]
    accelerated = [
        e["container"]["resources"]["accelerator"] for e in trainers if "accelerator" in e["container"]["resources"]
    ]
    assert len(trainers) == 2 and len(accelerated) == 1  # tests/cluster/test_gpu_trainer.py: which one, when
    assert "accelerator_type" in str(accelerated) and "accelerator_count" in str(accelerated)
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["accelerator_count"]["defaultValue"] == 0  # off unless asked
