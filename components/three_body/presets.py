"""Named parameter sets of the three-body pipeline, with the gate's MAE threshold each one earns.

Keys are the pipeline's parameter names. Figures behind each `max_mae` come from
tests/benchmarks/bench_three_body_training.py on 2 shared CPU cores (see its output and the
commit message); the threshold sits well above every healthy run measured and well below what
an untrained or broken network scores (predicting the initial positions for all t, about 0.3).
"""

from __future__ import annotations

from dataclasses import fields

from components.three_body.model import ThreeBodyTrainingConfig

PRESETS: dict[str, dict[str, float | int | str]] = {
    # `make run`: the whole run (simulate, train, evaluate, deploy) in about 3 minutes on 2 cores.
    "local": {
        "simulations": 2000, "t_max": 3.9, "validation_fraction": 0.2,
        "epochs": 1000, "batch_size": 1000, "learning_rate": 3e-3, "schedule": "cosine",
        "time_budget_s": 60.0, "patience": 0, "holdout_fraction": 0.02,
        "max_mae": 0.05,
    },
    # Breen's accuracy (MAE <= 0.015 for t <= 3.9) within an hour of training on 2 CPU cores.
    "standard": {
        "simulations": 10_000, "t_max": 3.9, "validation_fraction": 0.05,
        "epochs": 1000, "batch_size": 2000, "learning_rate": 2e-3, "schedule": "cosine",
        "time_budget_s": 3600.0, "patience": 0, "holdout_fraction": 0.01,
        "max_mae": 0.025,
    },
    # Breen's scale for a GPU node: t <= 10, 9,900 + 100 simulations, batches of 5000, Adam 5e-4.
    "paper": {
        "simulations": 10_000, "t_max": 10.0, "validation_fraction": 0.01,
        "epochs": 10_000, "batch_size": 5000, "learning_rate": 5e-4, "schedule": "cosine",
        "time_budget_s": 0.0, "patience": 500, "holdout_fraction": 0.01,
        "max_mae": 0.25,
    },
}


def preset(name: str) -> dict[str, float | int | str]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def training_config(params: dict, seed: int = 0) -> ThreeBodyTrainingConfig:
    """The training part of a parameter set; network size and anything absent keep the defaults."""
    names = {field.name for field in fields(ThreeBodyTrainingConfig)}
    return ThreeBodyTrainingConfig(**{"seed": seed, **{k: v for k, v in params.items() if k in names}})
