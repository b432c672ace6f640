"""The three-body model's contract: what serving, deploy, monitoring and the pipelines know of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.contract import Labelling, ModelSpec
from components.three_body.dataset import INPUT_COLUMNS
from components.three_body.evaluate import TIME_WINDOWS
from components.three_body.live import X_RANGE, Y_RANGE, label
from components.three_body.model import load_predictor
from components.three_body.presets import PRESETS, training_config
from components.three_body.simulate import time_grid


def validate_params(params: Mapping[str, Any]) -> None:
    """The three-body pipeline's simulation, training and gate parameters, checked before any work."""
    if params["simulations"] < 2:
        raise ValueError(f"simulations must be at least 2, got {params['simulations']}")
    time_grid(params["t_max"])
    if not 0 < params["validation_fraction"] < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {params['validation_fraction']}")
    if params["shard_size"] < 1:
        raise ValueError(f"shard_size must be positive, got {params['shard_size']}")
    if params["accelerator_count"] < 0:
        raise ValueError(f"accelerator_count must be >= 0, got {params['accelerator_count']}")
    training_config(dict(params), params["seed"]).validate()
    if not params["max_mae"] > 0:
        raise ValueError(f"max_mae must be positive, got {params['max_mae']}")


SPEC = ModelSpec(
    name="three-body",
    input_name="queries",
    input_columns=INPUT_COLUMNS,
    output_name="positions",
    output_columns=("x1x", "x1y", "x2x", "x2y", "x3x", "x3y"),
    load=load_predictor,
    smoke_rows=((0.5, -0.2, 0.5), (1.0, -0.2, 0.3)),
    validate_params=validate_params,
    presets=PRESETS,
    # The truth is the simulator's; MAE over bodies 1 and 2, as the held-out evaluation scores it.
    labelling=Labelling(
        label=label,
        plane=("x2x", "x2y"),
        plane_bounds=(X_RANGE, Y_RANGE),
        time="t",
        time_windows=TIME_WINDOWS,
        scored_outputs=("x1x", "x1y", "x2x", "x2y"),
    ),
)
