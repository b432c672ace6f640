"""The deep network of Breen et al. (2020) that stands in for the three-body integrator, and how it is trained."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components import saved_model
from components.three_body import dataset
from components.three_body.dataset import TrajectoryRows

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SCHEDULES = ("constant", "cosine")
RECIPE_EVERY_STEPS = 16  # how often the recipe sets the learning rate and checks the time budget


@dataclass(frozen=True)
class ThreeBodyTrainingConfig:
    """Breen's network (10 hidden Dense(128, relu), Adam, MAE loss) and the recipe that trains it.

    learning_rate is the peak rate; `cosine` anneals it to zero over the run, where the run ends
    after `epochs` or `time_budget_s` seconds, whichever comes first, so a budget-bound run still
    finishes annealed. With `holdout_fraction` > 0, `train_on_rows` keeps that share of the
    training simulations aside and training stops after `patience` epochs without a better
    held-out MAE (0: never early), returning the best weights seen. 0 seconds means no budget.
    `time_stride` k > 1 fits on every k-th output time of each training trajectory (the
    hold-out keeps all of them): neighbouring points of one trajectory teach the network little
    that the others do not, so at the same cost more simulations seen sparser generalize better.
    """

    hidden_layers: int = 10
    units: int = 128
    learning_rate: float = 5e-4
    batch_size: int = 5000
    epochs: int = 1000
    seed: int = 0
    schedule: str = "cosine"
    time_budget_s: float = 0.0
    patience: int = 0
    holdout_fraction: float = 0.0
    time_stride: int = 1

    def validate(self) -> None:
        for name in ("hidden_layers", "units", "batch_size", "epochs", "time_stride"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "patience"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not (_is_number(self.learning_rate) and math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not (_is_number(self.time_budget_s) and math.isfinite(self.time_budget_s) and self.time_budget_s >= 0):
            raise ValueError(f"time_budget_s must be a number >= 0 (0: no budget), got {self.time_budget_s!r}")
        if not (_is_number(self.holdout_fraction) and 0 <= self.holdout_fraction < 1):
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction!r}")

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainingProgress:
    """One epoch as a learning curve sees it; validation_mae is NaN without held-out rows."""

    epoch: int
    seconds: float
    loss: float
    validation_mae: float
    learning_rate: float


def build_network(
    config: ThreeBodyTrainingConfig, inputs: np.ndarray | None = None, targets: np.ndarray | None = None
):  # -> keras.Model
    """Breen's layers between a fixed standardization of the inputs and its inverse on the outputs.

    The scaling lives in the model, so the exported SavedModel takes raw (t, x2x, x2y) and
    returns raw positions; without data it is the identity.
    """
    import keras

    def moments(array: np.ndarray | None, width: int) -> tuple[np.ndarray, np.ndarray]:
        if array is None:
            return np.zeros(width), np.ones(width)
        return array.mean(axis=0), np.maximum(array.var(axis=0), 1e-12)

    in_mean, in_var = moments(inputs, 3)
    out_mean, out_var = moments(targets, 4)
    layers = [
        keras.Input(shape=(3,), name="t_x2"),
        keras.layers.Normalization(mean=in_mean, variance=in_var, name="standardize"),
    ]
    layers += [keras.layers.Dense(config.units, activation="relu") for _ in range(config.hidden_layers)]
    layers += [
        keras.layers.Dense(4),
        keras.layers.Normalization(mean=out_mean, variance=out_var, invert=True, name="x1_x2"),
    ]
    return keras.Sequential(layers)


def _recipe_callback(config: ThreeBodyTrainingConfig, steps_per_epoch: int, on_progress):
    import keras

    class Recipe(keras.callbacks.Callback):
        """Learning-rate schedule, time budget, early stopping and best-weights restore in one place.

        It acts once every RECIPE_EVERY_STEPS steps, not every step, and `train` has Keras run that many
        steps per call (steps_per_execution), so this hook runs between calls. Per step, on the JAX
        backend touching the model copies the whole training state back into it, a per-step end hook
        makes every backend wait for each step, and TensorFlow pays ~0.6 ms a call on CPU. On an H200
        (Keras on JAX, the paper preset's batches of 5,000) a step took 4.4 ms with the first two and
        2.8 ms without. The cosine in pieces of 16 steps is the same curve (thousands of steps per
        run), and the budget stops training a call or two late (the last call of an epoch is short).
        """

        def __init__(self) -> None:
            super().__init__()
            self.started = time.perf_counter()
            self.epoch = 0
            self.step = 0
            self.next_update = 0
            self.best = math.inf
            self.best_weights = None
            self.since_best = 0

        def progress(self) -> float:
            done = self.step / (steps_per_epoch * config.epochs)
            if config.time_budget_s:
                done = max(done, (time.perf_counter() - self.started) / config.time_budget_s)
            return min(done, 1.0)

        def learning_rate(self) -> float:
            if config.schedule == "constant":
                return config.learning_rate
            return config.learning_rate * 0.5 * (1 + math.cos(math.pi * self.progress()))

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None) -> None:
            self.step = self.epoch * steps_per_epoch + batch  # Keras passes the first step of the call
            acts = config.schedule != "constant" or config.time_budget_s
            if not acts or self.step < self.next_update:
                return
            self.next_update = self.step + RECIPE_EVERY_STEPS
            model = self.model
            if config.schedule != "constant":
                model.optimizer.learning_rate = self.learning_rate()
            if config.time_budget_s and time.perf_counter() - self.started >= config.time_budget_s:
                model.stop_training = True  # after this call's steps

        def on_epoch_end(self, epoch, logs=None) -> None:
            validation_mae = float(logs.get("val_loss", math.nan))
            if on_progress:
                on_progress(
                    TrainingProgress(
                        epoch + 1,
                        time.perf_counter() - self.started,
                        float(logs["loss"]),
                        validation_mae,
                        float(self.model.optimizer.learning_rate),
                    )
                )
            if math.isnan(validation_mae):
                return
            if validation_mae < self.best:
                self.best, self.best_weights, self.since_best = validation_mae, self.model.get_weights(), 0
            else:
                self.since_best += 1
                if config.patience and self.since_best >= config.patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return Recipe()


def train(
    inputs: np.ndarray,
    targets: np.ndarray,
    config: ThreeBodyTrainingConfig,
    on_epoch: Callable[[int, float], None] | None = None,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    on_progress: Callable[[TrainingProgress], None] | None = None,
):  # -> keras.Model mapping (t, x2x, x2y) to the positions of all three bodies
    """Fit the network, then append x3 = -x1 - x2 (centre of mass at the origin) for serving.

    With `validation` rows the weights of the epoch with the lowest held-out MAE are returned.
    """
    import keras

    config.validate()
    inputs, targets = np.asarray(inputs, dtype=np.float32), np.asarray(targets, dtype=np.float32)
    keras.utils.set_random_seed(config.seed)
    network = build_network(config, inputs, targets)
    network.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate), loss="mae", steps_per_execution=RECIPE_EVERY_STEPS
    )
    steps_per_epoch = math.ceil(len(inputs) / config.batch_size)
    callbacks = [_recipe_callback(config, steps_per_epoch, on_progress)]
    if on_epoch:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, float(logs["loss"])))
        )
    validation_data = None
    if validation is not None:
        validation_data = (np.asarray(validation[0], dtype=np.float32), np.asarray(validation[1], dtype=np.float32))
    network.fit(
        inputs,
        targets,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
        validation_data=validation_data,
        validation_batch_size=max(config.batch_size, 8192),
    )
    query = keras.Input(shape=(3,), name="t_x2")
    x1_x2 = network(query)
    x3 = keras.layers.Lambda(lambda p: -(p[:, 0:2] + p[:, 2:4]), name="x3")(x1_x2)
    return keras.Model(query, keras.layers.Concatenate(name="positions")([x1_x2, x3]), name="three_body")


def train_on_rows(
    rows: TrajectoryRows,
    config: ThreeBodyTrainingConfig,
    on_epoch: Callable[[int, float], None] | None = None,
    *,
    on_progress: Callable[[TrainingProgress], None] | None = None,
):  # -> keras.Model, as `train`
    """Train on simulated rows, holding `config.holdout_fraction` of the simulations out to pick the best epoch.

    The hold-out is split by simulation, like every split here, and is not the gate's validation set,
    so the gate's MAE stays an unbiased estimate.
    """
    config.validate()
    if not config.holdout_fraction:
        fit = dataset.every_kth_time(rows, config.time_stride)
        return train(fit.inputs, fit.targets, config, on_epoch, on_progress=on_progress)
    fit_ids, holdout_ids = dataset.split_by_simulation(rows.simulation, config.holdout_fraction, config.seed)
    fit, holdout = dataset.every_kth_time(rows.subset(fit_ids), config.time_stride), rows.subset(holdout_ids)
    return train(
        fit.inputs, fit.targets, config, on_epoch, validation=(holdout.inputs, holdout.targets), on_progress=on_progress
    )


def load_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """[n, 3] (t, x2x, x2y) -> [n, 6] (x1x, x1y, x2x, x2y, x3x, x3y)."""
    return saved_model.load(path)
