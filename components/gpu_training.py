"""The three-body trainer for NVIDIA GPUs: the same function as `train_three_body_model`, run in
the `trainer-gpu` image (TensorFlow's CUDA wheels, `make images GPU=1`).

A pipeline picks it when `accelerator_count` > 0 (dsl.If / dsl.Else, each branch carrying on
with its own model: dsl.OneOf over artifacts fails under kfp 2.17.3's local runner): the CPU
trainer image has no CUDA, so a GPU given to it would sit idle.
"""

from kfp import dsl

from components.images import image
from components.three_body.component import train_three_body_model

GPU_TRAINER_IMAGE = image("trainer-gpu")

train_three_body_model_gpu = dsl.component(base_image=GPU_TRAINER_IMAGE, install_kfp_package=False)(
    train_three_body_model.python_func
)
