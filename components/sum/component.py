"""KFP components of the sum pipeline: thin wrappers over `components.sum` functions."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components.images import BASE_IMAGE, TRAINER_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def generate_sum_data(
    recipe: str, size: int, low: float, high: float, small_fraction: float, seed: int,
    dataset: Output[Dataset], statistics: Output[Metrics],
):
    """Generate pairs and their sums, with the statistics that would reveal a skewed recipe."""
    from pathlib import Path

    from components.sum import data

    inputs, targets = data.generate(data.SumDataSpec(recipe, size, low, high, small_fraction, seed))
    data.save(Path(dataset.path), inputs, targets)
    dataset.metadata.update({"recipe": recipe, "sha256": data.data_hash(inputs, targets), "rows": len(inputs)})
    for key, value in data.summary(inputs).items():
        statistics.log_metric(key, value)


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_sum_model(
    dataset: Input[Dataset], epochs: int, batch_size: int, learning_rate: float,
    input_scale: float, target_scale: float, seed: int, model: Output[Model],
):
    """Train the article's network and export it as a SavedModel."""
    from pathlib import Path

    from components.sum import data
    from components.sum.model import SumTrainingConfig, export, train

    config = SumTrainingConfig(epochs, batch_size, learning_rate, input_scale, target_scale, seed)
    inputs, targets = data.load(Path(dataset.path))
    every = max(1, epochs // 10)
    trained = train(inputs, targets, config, on_epoch=lambda epoch, loss: print(
        f"epoch {epoch}/{epochs} loss {loss:.3e}", flush=True) if epoch % every == 0 or epoch == epochs else None)
    export(trained, Path(model.path))
    model.metadata.update({"training": config.as_dict(), "data_sha256": dataset.metadata.get("sha256", ""),
                           "data_recipe": dataset.metadata.get("recipe", "")})


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_sum_model(
    model: Input[Model], eval_dataset: Input[Dataset], max_mae: float,
    metrics: Output[Metrics], report: Output[Markdown],
) -> bool:
    """Score the model on serving-distribution data and the article's queries; True if it may ship."""
    import json
    from pathlib import Path

    from components.sum import data
    from components.sum.evaluate import as_dict, evaluate, report_markdown
    from components.sum.model import load_predictor

    inputs, targets = data.load(Path(eval_dataset.path))
    evaluation = evaluate(load_predictor(Path(model.path)), inputs, targets)
    passed = evaluation.mae <= max_mae
    decision = (f"PASS: MAE {evaluation.mae:.4g} <= {max_mae:g}" if passed
                else f"REFUSED: MAE {evaluation.mae:.4g} > {max_mae:g}; the model is not deployed")
    for key, value in evaluation.metrics().items():
        metrics.log_metric(key, value)
    metrics.log_metric("gate_passed", float(passed))
    Path(report.path).write_text(report_markdown(evaluation, "Sum model evaluation", decision))
    model.metadata["evaluation"] = json.dumps(as_dict(evaluation))
    print(decision, flush=True)
    return passed
