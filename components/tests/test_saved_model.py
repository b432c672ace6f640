"""The SavedModel predictor answers a large input in chunks, with the same rows as one call."""

from __future__ import annotations

import numpy as np

from components import saved_model


def test_a_large_input_is_answered_in_chunks_with_the_rows_of_one_call(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    saved_model.export(model, tmp_path / "model")
    predictor = saved_model.SavedModelPredictor(tmp_path / "model")
    inputs = np.random.default_rng(0).normal(size=(1001, 3))
    whole = predictor(inputs)
    predictor.CHUNK_ROWS = 64  # 16 chunks, the last one short
    chunked = predictor(inputs)
    assert chunked.shape == (1001, 2) and chunked.dtype == np.float64
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)  # per-row math; only the blocking differs
    np.testing.assert_allclose(whole, model.predict(inputs, verbose=0), rtol=1e-5, atol=1e-6)
