"""TensorFlow SavedModels in and out: the format TF Serving and the project's predictor both load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def export(model, path: Path) -> None:
    """Write a Keras model with a `serving_default` signature."""
    model.export(str(path), format="tf_saved_model", verbose=False)


def load(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from an [n, k] array to the signature's single output as float64, shape [n, m]."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    # Called by keyword: a positional call goes through the signature's argument-binding
    # fallback, which costs several times the model itself for small batches.
    (input_name,) = serve.structured_input_signature[1]

    def predict(inputs: np.ndarray) -> np.ndarray:
        outputs = serve(**{input_name: tf.constant(inputs, dtype=tf.float32)})
        return next(iter(outputs.values())).numpy().astype(np.float64)

    predict.keep_alive = loaded  # the signature needs the loaded object alive
    return predict
