"""A third learning problem, made up for the tests: y = 3x.

Nothing outside this folder names it: it joins through FUSEML_MODEL_SPECS, which is how a
new problem proves that serving, deploy and monitoring learn models from the registry alone.
"""

from __future__ import annotations

import numpy as np

from components import saved_model
from components.contract import ModelSpec


def build_tripler():  # -> keras.Model
    """A one-weight network set to exactly 3: its answers are known without training."""
    import keras

    model = keras.Sequential([keras.Input(shape=(1,), name="x"), keras.layers.Dense(1, name="y")])
    model.layers[-1].set_weights([np.array([[3.0]]), np.array([0.0])])
    return model


SPEC = ModelSpec(
    name="triple",
    input_name="values",
    input_columns=("x",),
    output_name="tripled",
    output_columns=("y",),
    load=saved_model.load,
    smoke_rows=((1.0,), (2.0,)),
)
