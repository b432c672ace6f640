"""The GPU trainer variant, and `accelerator_count` selecting it in the compiled three-body pipeline."""

import yaml

from components.gpu_training import GPU_TRAINER_IMAGE, train_three_body_model_gpu
from components.images import TRAINER_IMAGE
from components.three_body.component import train_three_body_model
from pipelines.registry import compiled_path


def test_the_gpu_variant_is_the_same_component_in_the_gpu_image() -> None:
    cpu, gpu = train_three_body_model.component_spec, train_three_body_model_gpu.component_spec
    assert gpu.implementation.container.image == GPU_TRAINER_IMAGE != cpu.implementation.container.image
    assert GPU_TRAINER_IMAGE.replace("/trainer-gpu:", "/trainer:") == TRAINER_IMAGE
    assert gpu.inputs == cpu.inputs and gpu.outputs == cpu.outputs
    assert gpu.implementation.container.command == cpu.implementation.container.command


def test_accelerator_count_selects_the_gpu_trainer_and_only_it_asks_for_the_accelerator() -> None:
    spec = next(d for d in yaml.safe_load_all(compiled_path("three-body").read_text()) if "pipelineInfo" in d)
    executors = spec["deploymentSpec"]["executors"]
    trainers = {name: executors[name]["container"] for name in executors if name.startswith("exec-train-three-body")}
    assert len(trainers) == 2
    (gpu,) = [name for name, container in trainers.items() if container["image"] == GPU_TRAINER_IMAGE]
    (cpu,) = [name for name, container in trainers.items() if container["image"] == TRAINER_IMAGE]
    accelerator = trainers[gpu]["resources"]["accelerator"]
    assert "accelerator_type" in str(accelerator) and "accelerator_count" in str(accelerator)
    assert "accelerator" not in trainers[cpu].get("resources", {})
    # Which branch runs which trainer: the GPU one only when accelerator_count > 0.
    branches = next(c for name, c in spec["components"].items() if name.startswith("comp-condition-branches"))
    for branch in branches["dag"]["tasks"].values():
        inner = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"].values()
        (executor,) = [
            spec["components"][task["componentRef"]["name"]]["executorLabel"]
            for task in inner
            if task["componentRef"]["name"].startswith("comp-train-three-body-model")
        ]
        condition = branch["triggerPolicy"]["condition"]
        assert "accelerator_count" in condition, condition
        assert (executor == gpu) == condition.startswith("!"), (condition, executor)
