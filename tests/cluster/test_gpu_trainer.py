"""The GPU trainer variant, and the wiring that lets `accelerator_count` select it, through kfp's compiler."""

from pathlib import Path

import yaml
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Model

from components.gpu_training import GPU_TRAINER_IMAGE, train_three_body_model_gpu
from components.images import TRAINER_IMAGE
from components.three_body.component import train_three_body_model


def test_the_gpu_variant_is_the_same_component_in_the_gpu_image() -> None:
    cpu, gpu = train_three_body_model.component_spec, train_three_body_model_gpu.component_spec
    assert gpu.implementation.container.image == GPU_TRAINER_IMAGE != cpu.implementation.container.image
    assert GPU_TRAINER_IMAGE.replace("/trainer-gpu:", "/trainer:") == TRAINER_IMAGE
    assert gpu.inputs == cpu.inputs and gpu.outputs == cpu.outputs
    assert gpu.implementation.container.command == cpu.implementation.container.command


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def use_model(model: Input[Model]):
    print(model.path)


@dsl.pipeline(name="accelerator-selects-trainer")
def wired(dataset_uri: str, accelerator_type: str = "nvidia.com/gpu", accelerator_count: int = 0):
    """How pipelines/three_body.py can select the trainer: each branch trains and carries on with
    its own model (dsl.OneOf over artifacts fails under kfp 2.17.3's local runner, which `make run` uses)."""
    dataset = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset)
    args = dict(dataset=dataset.output, hidden_layers=2, units=8, learning_rate=1e-3, batch_size=32, epochs=1, seed=0)
    with dsl.If(accelerator_count > 0, name="on GPU"):
        on_gpu = train_three_body_model_gpu(**args)
        on_gpu.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_count)
        use_model(model=on_gpu.outputs["model"])
    with dsl.Else(name="on CPU"):
        use_model(model=train_three_body_model(**args).outputs["model"])


def test_accelerator_count_selects_the_gpu_trainer_and_only_it_asks_for_the_accelerator(tmp_path: Path) -> None:
    package = tmp_path / "wired.yaml"
    compiler.Compiler().compile(wired, str(package))
    spec = yaml.safe_load(package.read_text())
    executors = spec["deploymentSpec"]["executors"]
    images = {name: executor["container"]["image"] for name, executor in executors.items() if "container" in executor}
    gpu = [name for name, image in images.items() if image == GPU_TRAINER_IMAGE]
    assert len(gpu) == 1
    assert "accelerator" in executors[gpu[0]]["container"]["resources"]
    trainers = [name for name in images if name.startswith("exec-train-three-body-model")]
    assert len(trainers) == 2
    cpu = [name for name in trainers if name not in gpu]
    assert "accelerator" not in executors[cpu[0]]["container"].get("resources", {})
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    for branch in branches.values():
        tasks = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"].values()
        (executor,) = [
            spec["components"][task["componentRef"]["name"]]["executorLabel"]
            for task in tasks
            if task["componentRef"]["name"].startswith("comp-train-three-body-model")
        ]
        condition = branch["triggerPolicy"]["condition"]
        on_gpu = not condition.startswith("!")
        assert "accelerator_count" in condition and condition.rstrip(")'").endswith("> 0"), condition
        assert (executor in gpu) is on_gpu, (branch["taskInfo"]["name"], executor)
