"""The deep network of Breen et al. (2020) that stands in for the three-body integrator."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components import saved_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROFILES = ("local", "paper")


@dataclass(frozen=True)
class ThreeBodyTrainingConfig:
    """Breen's network by default: 10 hidden Dense(128, relu), Adam 5e-4, MAE loss, batches of 5000."""

    hidden_layers: int = 10
    units: int = 128
    learning_rate: float = 5e-4
    batch_size: int = 5000
    epochs: int = 1000
    seed: int = 0

    def validate(self) -> None:
        for name in ("hidden_layers", "units", "batch_size", "epochs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """How much to simulate and train: `local` finishes in minutes, `paper` is Breen's scale."""

    simulations: int
    validation_fraction: float
    training: ThreeBodyTrainingConfig


def profile(name: str) -> Profile:
    if name == "local":
        return Profile(160, 0.1, ThreeBodyTrainingConfig(batch_size=500, epochs=40, learning_rate=1e-3))
    if name == "paper":
        return Profile(10_000, 0.01, ThreeBodyTrainingConfig())
    raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")


def build_network(config: ThreeBodyTrainingConfig):  # -> keras.Model
    import keras

    layers = [keras.Input(shape=(3,), name="t_x2")]
    layers += [keras.layers.Dense(config.units, activation="relu") for _ in range(config.hidden_layers)]
    layers.append(keras.layers.Dense(4, name="x1_x2"))
    return keras.Sequential(layers)


def train(
    inputs: np.ndarray,
    targets: np.ndarray,
    config: ThreeBodyTrainingConfig,
    on_epoch: Callable[[int, float], None] | None = None,
):  # -> keras.Model mapping (t, x2x, x2y) to the positions of all three bodies
    """Fit the network, then append x3 = -x1 - x2 (centre of mass at the origin) for serving."""
    import keras

    config.validate()
    keras.utils.set_random_seed(config.seed)
    network = build_network(config)
    network.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mae")
    callbacks = []
    if on_epoch:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, float(logs["loss"]))))
    network.fit(inputs.astype("float32"), targets.astype("float32"), epochs=config.epochs,
                batch_size=config.batch_size, shuffle=True, verbose=0, callbacks=callbacks)
    query = keras.Input(shape=(3,), name="t_x2")
    x1_x2 = network(query)
    x3 = keras.layers.Lambda(lambda p: -(p[:, 0:2] + p[:, 2:4]), name="x3")(x1_x2)
    return keras.Model(query, keras.layers.Concatenate(name="positions")([x1_x2, x3]), name="three_body")


def load_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """[n, 3] (t, x2x, x2y) -> [n, 6] (x1x, x1y, x2x, x2y, x3x, x3y)."""
    return saved_model.load(path)
