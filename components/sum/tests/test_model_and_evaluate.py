import keras
import numpy as np
import pytest

from components.saved_model import export
from components.sum.data import SumDataSpec, generate
from components.sum.evaluate import ARTICLE_QUERIES, evaluate, report_markdown
from components.sum.model import STEPS_PER_CALL, SumTrainingConfig, load_predictor, train


def test_exact_predictor_scores_zero_and_wrong_one_does_not():
    inputs, targets = generate(SumDataSpec(size=100))
    perfect = evaluate(lambda x: x.sum(axis=1), inputs, targets)
    assert perfect.mae == 0 and perfect.rmse == 0 and perfect.max_relative_error == 0
    assert [q.abs_error for q in perfect.queries] == [0.0] * len(ARTICLE_QUERIES)
    doubled = evaluate(lambda x: 2 * x.sum(axis=1), inputs, targets)
    assert doubled.mae == pytest.approx(np.mean(targets))
    assert "REFUSED" in report_markdown(doubled, "t", "REFUSED: too wrong") and "1e+06 + 4" in report_markdown(
        doubled, "t", "x"
    )


def test_empty_evaluation_data_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        evaluate(lambda x: x.sum(axis=1), np.zeros((0, 2)), np.zeros(0))


@pytest.mark.parametrize(
    "field, value", [("epochs", 0), ("batch_size", -1), ("learning_rate", 0.0), ("input_scale", float("nan"))]
)
def test_bad_training_config_is_named(field, value):
    with pytest.raises(ValueError, match=field):
        SumTrainingConfig(**{field: value}).validate()


@pytest.mark.integration
def test_trained_model_exports_and_serves_raw_numbers(tmp_path):
    inputs, targets = generate(SumDataSpec(size=4000, seed=3))
    model = train(inputs, targets, SumTrainingConfig(epochs=8, batch_size=32, learning_rate=3e-3))
    export(model, tmp_path / "model")
    predict = load_predictor(tmp_path / "model")
    result = evaluate(predict, *generate(SumDataSpec(size=500, small_fraction=0, seed=4)))
    assert predict(np.array([[1.0, 2.0], [3.0, 4.0]])).shape == (2,)
    assert result.mae < 100  # learnt addition roughly; the full run's figures are in the e2e test
    assert (tmp_path / "model" / "saved_model.pb").exists()
    (network,) = (layer for layer in model.layers if isinstance(layer, keras.Sequential))
    assert network.steps_per_execution == STEPS_PER_CALL and int(network.optimizer.iterations) == 8 * 4000 // 32
