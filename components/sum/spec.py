"""The sum model's contract: what serving, deploy, monitoring and the pipelines know of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from components.contract import Labelling, LabelResult, ModelSpec
from components.sum.data import FEATURES, SumDataSpec
from components.sum.evaluate import ARTICLE_QUERIES
from components.sum.model import SumTrainingConfig, load_predictor


def validate_params(params: Mapping[str, Any]) -> None:
    """The sum pipeline's data, training and gate parameters, checked before any work."""
    SumDataSpec(
        params["recipe"], params["size"], params["low"], params["high"], params["small_fraction"], params["seed"]
    ).validate()
    try:
        SumDataSpec(
            params["eval_recipe"],
            params["eval_size"],
            params["eval_low"],
            params["eval_high"],
            params["eval_small_fraction"],
            params["eval_seed"],
        ).validate()
    except ValueError as error:
        raise ValueError(f"evaluation data: {error}") from None
    SumTrainingConfig(
        params["epochs"],
        params["batch_size"],
        params["learning_rate"],
        params["input_scale"],
        params["target_scale"],
        params["seed"],
    ).validate()
    if not params["max_relative_mae"] > 0:
        raise ValueError(f"max_relative_mae must be positive, got {params['max_relative_mae']}")


def label(inputs: np.ndarray) -> LabelResult:
    """The exact answer to every query: x + y."""
    inputs = np.asarray(inputs, dtype=np.float64).reshape(-1, 2)
    return LabelResult(inputs.sum(axis=1, keepdims=True), np.ones(len(inputs), dtype=bool))


SPEC = ModelSpec(
    name="sum",
    input_name="pairs",
    input_columns=FEATURES,
    output_name="sum",
    output_columns=("sum",),
    load=load_predictor,
    smoke_rows=tuple((x, y) for x, y, _ in ARTICLE_QUERIES[:2]),
    validate_params=validate_params,
    labelling=Labelling(label=label, plane=FEATURES),
)
