"""TensorFlow SavedModels in and out: the format TF Serving and the project's predictor both load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def export(model, path: Path) -> None:
    """Write a Keras model with a `serving_default` signature."""
    model.export(str(path), format="tf_saved_model", verbose=False)


class SavedModelPredictor:
    """[n, k] array in, the signature's single output as float64 [n, m] out.

    It holds the loaded object: the signature alone does not keep its variables alive. Large
    inputs go through in chunks: a held-out set of a million rows in one call holds each hidden
    layer's activations for all of them (0.5 GB a layer for Breen's network).
    """

    CHUNK_ROWS = 65_536

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))
        self._serve = self._loaded.signatures["serving_default"]
        # Called by keyword: a positional call goes through the signature's argument-binding
        # fallback, which costs several times the model itself for small batches.
        (self._input_name,) = self._serve.structured_input_signature[1]

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        if len(inputs) <= self.CHUNK_ROWS:
            return self._call(inputs)
        return np.concatenate(
            [self._call(inputs[i : i + self.CHUNK_ROWS]) for i in range(0, len(inputs), self.CHUNK_ROWS)]
        )

    def _call(self, inputs: np.ndarray) -> np.ndarray:
        outputs = self._serve(**{self._input_name: self._tf.constant(inputs, dtype=self._tf.float32)})
        answer: np.ndarray = next(iter(outputs.values())).numpy().astype(np.float64)
        return answer


def load(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The SavedModel at `path` as a predictor."""
    return SavedModelPredictor(path)
