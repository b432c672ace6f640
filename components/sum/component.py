"""KFP components of the sum pipeline: thin wrappers over `components.sum` functions."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components.images import BASE_IMAGE, TRAINER_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def generate_sum_data(
    recipe: str,
    size: int,
    low: float,
    high: float,
    small_fraction: float,
    seed: int,
    dataset: Output[Dataset],
    statistics: Output[Metrics],
):
    """Generate pairs and their sums, with the statistics that would reveal a skewed recipe.

    Args:
        recipe: `uniform` (representative pairs) or `seed-equal-pairs` (the article's skewed data).
        size: Number of pairs (the article's recipe has a fixed size and ignores it).
        low: Smallest value of x and y for the uniform recipe.
        high: Largest value of x and y for the uniform recipe.
        small_fraction: Share of pairs drawn log-uniformly over seven decades, so 4 + 5 is learnt.
        seed: Random seed; the same seed gives the same data.
        dataset: The pairs and their sums (npz: inputs, targets).
        statistics: Per-feature summary and the x-y correlation, shown in the UI.
    """
    from pathlib import Path

    from components.sum import data

    inputs, targets = data.generate(data.SumDataSpec(recipe, size, low, high, small_fraction, seed))
    data.save(Path(dataset.path), inputs, targets)
    dataset.metadata.update({"recipe": recipe, "sha256": data.data_hash(inputs, targets), "rows": len(inputs)})
    for key, value in data.summary(inputs).items():
        statistics.log_metric(key, value)


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_sum_model(
    dataset: Input[Dataset],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    input_scale: float,
    target_scale: float,
    seed: int,
    model: Output[Model],
):
    """Train the article's network and export it as a SavedModel with its model card.

    Args:
        dataset: Training pairs from `generate_sum_data`.
        epochs: Passes over the data.
        batch_size: Pairs per gradient step.
        learning_rate: Adam's initial learning rate (cosine decay to 1 % of it).
        input_scale: Inputs are divided by this before the network (baked into the export).
        target_scale: Targets are divided by this in training; answers are multiplied back.
        seed: Random seed of the weights and the shuffling.
        model: The SavedModel; its metadata holds the model card (schema, envelope, data hash).
    """
    from pathlib import Path

    from components.contract import ModelCard
    from components.sum import data
    from components.sum.model import SumTrainingConfig, train
    from components.sum.spec import SPEC
    from components.training import epoch_printer, save_trained

    config = SumTrainingConfig(epochs, batch_size, learning_rate, input_scale, target_scale, seed)
    inputs, targets = data.load(Path(dataset.path))
    trained = train(inputs, targets, config, on_epoch=epoch_printer(epochs))
    card = ModelCard.for_training(
        SPEC, inputs, config.as_dict(), dataset.metadata.get("sha256", ""), dataset.metadata.get("recipe", "")
    )
    save_trained(trained, Path(model.path), card, model.metadata)


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_sum_model(
    model: Input[Model],
    eval_dataset: Input[Dataset],
    max_relative_mae: float,
    champion_tolerance: float,
    data_valid: bool,
    block_on_skew: bool,
    store_endpoint: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
) -> bool:
    """Score challenger and champion on the same serving-distribution data; True if it may ship.

    Args:
        model: The newly trained model (the challenger).
        eval_dataset: Held-out pairs from the serving distribution.
        max_relative_mae: The challenger's relative MAE must not exceed this.
        champion_tolerance: How much worse (relative) than the served model the challenger may be.
        data_valid: The data-validation verdict (False: skew or drift found).
        block_on_skew: Refuse to ship when data validation found skew.
        store_endpoint: Object store host:port; empty means the MINIO_ENDPOINT of the pod.
        metrics: Challenger and champion scores and the gate's verdict.
        report: The decision, the scores and the article's seven queries.
    """
    import dataclasses
    from pathlib import Path

    from components.deploy.champion import decide, load_champion
    from components.store.object_store import ObjectStore
    from components.sum import data
    from components.sum.evaluate import evaluate, report_markdown
    from components.sum.model import load_predictor

    inputs, targets = data.load(Path(eval_dataset.path))
    challenger = evaluate(load_predictor(Path(model.path)), inputs, targets)
    champion = load_champion(ObjectStore.from_env(endpoint=store_endpoint), "sum", load_predictor)
    champion_version, champion_eval = (
        (champion[0], evaluate(champion[1], inputs, targets)) if champion else (None, None)
    )
    decision = decide(
        challenger.relative_mae,
        max_relative_mae,
        champion_eval.relative_mae if champion_eval else None,
        champion_version,
        champion_tolerance,
    )
    if decision.deploy and block_on_skew and not data_valid:
        decision = dataclasses.replace(
            decision, deploy=False, reason="REFUSED: data validation found skew (see its report)"
        )
    for key, value in challenger.metrics().items():
        metrics.log_metric(key, value)
    if champion_eval and champion_version:
        metrics.log_metric("champion_relative_mae", champion_eval.relative_mae)
        metrics.log_metric("champion_version", float(champion_version))
    metrics.log_metric("data_validation_passed", float(data_valid))
    metrics.log_metric("gate_passed", float(decision.deploy))
    skew_note = "" if data_valid else " Data validation found skew between training and serving data."
    Path(report.path).write_text(
        report_markdown(challenger, "Sum model evaluation", decision.reason + skew_note, champion_eval)
    )
    print(decision.reason + skew_note, flush=True)
    return decision.deploy
