"""The LiteRT conversion serves only when it answers like the validated SavedModel."""

import logging

import numpy as np
import pytest

from components.contract import Envelope
from components.saved_model import load
from components.serving import lite
from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model


@pytest.fixture(scope="module")
def sum_model(tmp_path_factory):
    return train_tiny_sum_model(tmp_path_factory.mktemp("lite") / "model")


def test_the_conversion_serves_and_answers_like_the_saved_model_at_every_batch_size(sum_model):
    reference = load(sum_model)
    served = lite.serving_predictor(sum_model, reference, tiny_sum_card().envelope)
    assert isinstance(served, lite.LitePredictor)
    rows = np.random.default_rng(1).uniform(0, 10_000, (300, 2))
    for size in (1, 16, 300, 16, 1):  # the interpreter is resized back and forth
        answered, expected = served(rows[:size]), reference(rows[:size])
        assert answered.dtype == np.float64 and answered.shape == expected.shape == (size, 1)
        np.testing.assert_allclose(answered, expected, rtol=1e-5, atol=1e-2)


def test_a_conversion_that_answers_differently_does_not_serve(sum_model, caplog):
    saved_model = load(sum_model)

    def reference(rows):
        return saved_model(rows) * 1.001  # 0.1 % off: ten times what the check allows

    with caplog.at_level(logging.WARNING):
        served = lite.serving_predictor(sum_model, reference, tiny_sum_card().envelope)
    assert served is reference
    assert "its answers differ from the SavedModel's by up to" in caplog.text


def test_without_an_envelope_to_check_on_the_saved_model_serves(sum_model):
    reference = load(sum_model)
    assert lite.serving_predictor(sum_model, reference, None) is reference


def test_a_model_the_converter_cannot_read_still_serves_through_tensorflow(tmp_path, caplog):
    (tmp_path / "saved_model.pb").write_bytes(b"not a SavedModel")

    def reference(rows):
        return rows.sum(axis=1)

    with caplog.at_level(logging.WARNING):
        served = lite.serving_predictor(tmp_path, reference, tiny_sum_card().envelope)
    assert served is reference
    assert "serving the SavedModel, not its LiteRT conversion" in caplog.text


def test_answers_that_are_not_numbers_disagree():
    rows = np.zeros((4, 2))
    problem = lite.disagreement(lambda r: np.full((len(r), 1), np.nan), lambda r: np.zeros(len(r)), rows)
    assert problem is not None and "nan" in problem


def test_a_different_answer_shape_disagrees():
    rows = np.zeros((4, 2))
    problem = lite.disagreement(lambda r: np.zeros((len(r), 2)), lambda r: np.zeros(len(r)), rows)
    assert problem == "it answers shape (4, 2), the SavedModel (4, 1)"


def test_probe_rows_cover_the_envelope_and_are_the_same_each_time():
    envelope = Envelope(("t", "x"), (0.0, -0.5), (3.9, 0.0))
    rows = lite.probe_rows(envelope)
    assert rows.shape == (lite.PROBE_ROWS, 2)
    assert not envelope.outside(rows).any()
    assert rows[:, 0].max() - rows[:, 0].min() > 3.5  # spread over the box, not one corner
    np.testing.assert_array_equal(rows, lite.probe_rows(envelope))
