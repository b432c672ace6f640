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

    from components.saved_model import export
    from components.serving.envelope import Envelope
    from components.sum import data
    from components.sum.model import SumTrainingConfig, train

    config = SumTrainingConfig(epochs, batch_size, learning_rate, input_scale, target_scale, seed)
    inputs, targets = data.load(Path(dataset.path))
    every = max(1, epochs // 10)
    trained = train(inputs, targets, config, on_epoch=lambda epoch, loss: print(
        f"epoch {epoch}/{epochs} loss {loss:.3e}", flush=True) if epoch % every == 0 or epoch == epochs else None)
    export(trained, Path(model.path))
    model.metadata.update({"training": config.as_dict(), "data_sha256": dataset.metadata.get("sha256", ""),
                           "data_recipe": dataset.metadata.get("recipe", ""),
                           "envelope": Envelope.of(data.FEATURES, inputs).as_dict()})


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_sum_model(
    model: Input[Model], eval_dataset: Input[Dataset], max_relative_mae: float, champion_tolerance: float,
    data_valid: bool, block_on_skew: bool, store_endpoint: str, metrics: Output[Metrics], report: Output[Markdown],
) -> bool:
    """Score challenger and champion on the same serving-distribution data; True if it may ship."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from components.deploy.champion import decide, load_champion
    from components.store.object_store import ObjectStore
    from components.sum import data
    from components.sum.evaluate import evaluate, report_markdown
    from components.sum.model import load_predictor

    inputs, targets = data.load(Path(eval_dataset.path))
    challenger = evaluate(load_predictor(Path(model.path)), inputs, targets)
    champion = load_champion(ObjectStore.from_env(endpoint=store_endpoint), "sum", Path(tempfile.mkdtemp()), load_predictor)
    champion_eval = evaluate(champion[1], inputs, targets) if champion else None
    decision = decide(challenger.relative_mae, max_relative_mae,
                      champion_eval.relative_mae if champion_eval else None,
                      champion[0] if champion else None, champion_tolerance)
    if decision.deploy and block_on_skew and not data_valid:
        decision = dataclasses.replace(decision, deploy=False,
                                       reason="REFUSED: data validation found skew (see its report)")
    for key, value in challenger.metrics().items():
        metrics.log_metric(key, value)
    if champion_eval:
        metrics.log_metric("champion_relative_mae", champion_eval.relative_mae)
        metrics.log_metric("champion_version", float(champion[0]))
    metrics.log_metric("data_validation_passed", float(data_valid))
    metrics.log_metric("gate_passed", float(decision.deploy))
    skew_note = "" if data_valid else " Data validation found skew between training and serving data."
    Path(report.path).write_text(report_markdown(challenger, "Sum model evaluation", decision.reason + skew_note,
                                                 champion_eval))
    print(decision.reason + skew_note, flush=True)
    return decision.deploy
