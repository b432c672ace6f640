"""The three-body model's contract: what serving, deploy, monitoring and the pipelines know of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.contract import Labelling, ModelSpec
from components.three_body.dataset import INPUT_COLUMNS
from components.three_body.evaluate import TIME_WINDOWS
from components.three_body.live import X_RANGE, Y_RANGE, label
from components.three_body.model import ThreeBodyTrainingConfig, load_predictor
from components.three_body.simulate import time_grid

LOCAL = {"simulations": 160, "validation_fraction": 0.1, "epochs": 40, "batch_size": 500, "learning_rate": 0.001}
PRESETS = {
    "local": LOCAL,
    # Breen et al. (2020): 9,900 training and 100 validation simulations, batches of 5000, Adam 5e-4.
    "paper": {"simulations": 10_000, "validation_fraction": 0.01, "epochs": 1000, "batch_size": 5000,
              "learning_rate": 0.0005},
}


def validate_params(params: Mapping[str, Any]) -> None:
    """The three-body pipeline's simulation, training and gate parameters, checked before any work."""
    if params["simulations"] < 2:
        raise ValueError(f"simulations must be at least 2, got {params['simulations']}")
    time_grid(params["t_max"])
    if not 0 < params["validation_fraction"] < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {params['validation_fraction']}")
    ThreeBodyTrainingConfig(params["hidden_layers"], params["units"], params["learning_rate"],
                            params["batch_size"], params["epochs"], params["seed"]).validate()
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
    labelling=Labelling(label=label, plane=("x2x", "x2y"), plane_bounds=(X_RANGE, Y_RANGE), time="t",
                        time_windows=TIME_WINDOWS, scored_outputs=("x1x", "x1y", "x2x", "x2y")),
)
