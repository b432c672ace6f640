"""The article's Keras network for adding two numbers, trained and exported for TF Serving."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components import saved_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Steps Keras runs per call. A step of this network at batch 32 is nearly all per-call overhead:
# the pipeline's 40 epochs of 20,000 pairs took 30.9 s one step a call and take 8.2 s at 64, to
# the same weights (the schedule counts steps inside the optimizer).
STEPS_PER_CALL = 64


@dataclass(frozen=True)
class SumTrainingConfig:
    """The article trains unscaled, 10 epochs at batch size 1 (input_scale = target_scale = 1)."""

    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 1e-3
    input_scale: float = 10_000.0
    target_scale: float = 20_000.0
    seed: int = 0

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("learning_rate", "input_scale", "target_scale"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def build_network():  # -> keras.Model
    """Dense(20, relu), Dense(20, relu), Dense(1): the article's network, on inputs (x, y)."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(2,), name="pair"),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(1, name="sum"),
        ]
    )


def train(
    inputs: np.ndarray,
    targets: np.ndarray,
    config: SumTrainingConfig,
    on_epoch: Callable[[int, float], None] | None = None,
):  # -> keras.Model taking raw pairs and returning raw sums
    """Fit on scaled data, then wrap the scaling around the network so serving takes raw numbers."""
    import keras

    config.validate()
    keras.utils.set_random_seed(config.seed)
    network = build_network()
    steps = config.epochs * int(np.ceil(len(inputs) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.01)
    network.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="mse", metrics=["mae"], steps_per_execution=STEPS_PER_CALL
    )
    callbacks = []
    if on_epoch:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, float(logs["loss"])))
        )
    network.fit(
        (inputs / config.input_scale).astype("float32"),
        (targets / config.target_scale).astype("float32"),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    pair = keras.Input(shape=(2,), name="pair")
    scaled = keras.layers.Rescaling(1.0 / config.input_scale, name="scale_inputs")(pair)
    total = keras.layers.Rescaling(config.target_scale, name="unscale_sum")(network(scaled))
    return keras.Model(pair, total, name="sum_of_two_numbers")


def load_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load an exported SavedModel as a function from [n, 2] pairs to [n] sums."""
    predict = saved_model.load(path)
    return lambda pairs: predict(pairs).reshape(-1)
