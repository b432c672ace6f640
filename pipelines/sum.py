"""The sum-of-two-numbers pipeline: generate, train, evaluate, and deploy only what passes."""

from collections.abc import Mapping
from typing import Any

from kfp import dsl

from components.sum.component import evaluate_sum_model, generate_sum_data, train_sum_model
from components.validation.component import validate_data
from pipelines.controls import DATA, SERVING, SMALL, TRAINING, pure, side_effect
from pipelines.gate import deploy_if_passed
from pipelines.local_run import LocalRun
from pipelines.store_access import with_store_access


@dsl.pipeline(name="sum", description="The FuseML article's sum-of-two-numbers model, gated against skew.")
def sum_pipeline(
    recipe: str = "uniform",
    size: int = 20_000,
    low: float = 0.0,
    high: float = 10_000.0,
    small_fraction: float = 0.1,
    eval_recipe: str = "uniform",
    eval_size: int = 5_000,
    eval_low: float = 0.0,
    eval_high: float = 10_000.0,
    eval_small_fraction: float = 0.1,
    epochs: int = 40,
    batch_size: int = 32,
    learning_rate: float = 0.001,
    input_scale: float = 10_000.0,
    target_scale: float = 20_000.0,
    seed: int = 0,
    eval_seed: int = 1,
    max_relative_mae: float = 0.005,
    champion_tolerance: float = 0.05,
    drift_alpha: float = 0.05,
    block_on_skew: bool = False,
    deploy_target: str = "kserve",
    server_url: str = "",
    store_endpoint: str = "",
    canary_percent: int = 0,
):
    """Train the article's sum network, check the data for skew, and deploy only what passes the gate.

    Args:
        recipe: Training data: `uniform` (representative) or `seed-equal-pairs` (the article's skew).
        size: Number of training pairs.
        low: Smallest training value of x and y.
        high: Largest training value of x and y.
        small_fraction: Share of training pairs spread log-uniformly over seven decades.
        eval_recipe: Evaluation data, drawn from the serving distribution (never from training data).
        eval_size: Number of evaluation pairs.
        eval_low: Smallest evaluation value.
        eval_high: Largest evaluation value.
        eval_small_fraction: Share of evaluation pairs spread over seven decades.
        epochs: Training passes over the data.
        batch_size: Pairs per gradient step.
        learning_rate: Adam's initial learning rate.
        input_scale: Inputs are divided by this inside the network.
        target_scale: The network's output is multiplied by this.
        seed: Seed of the training data and the weights.
        eval_seed: Seed of the evaluation data.
        max_relative_mae: Gate: the largest relative MAE on evaluation data that may ship.
        champion_tolerance: Gate: how much worse (relative) than the served model a new one may be.
        drift_alpha: Significance level of the data-validation checks.
        block_on_skew: Refuse to deploy when data validation finds skew.
        deploy_target: `kserve` (an InferenceService in the run's namespace), `local` or `none`.
        server_url: The local model server (deploy_target `local` only).
        store_endpoint: Object store host:port; empty uses the fuseml-object-store ConfigMap.
        canary_percent: Share of traffic a new version gets first on KServe (0: all at once).
    """
    training_data = pure(
        generate_sum_data(
            recipe=recipe,
            size=size,
            low=low,
            high=high,
            small_fraction=small_fraction,
            seed=seed,
        ),
        SMALL,
    ).set_display_name("generate training data")
    eval_data = pure(
        generate_sum_data(
            recipe=eval_recipe,
            size=eval_size,
            low=eval_low,
            high=eval_high,
            small_fraction=eval_small_fraction,
            seed=eval_seed,
        ),
        SMALL,
    ).set_display_name("generate evaluation data (serving distribution)")
    validation = pure(
        validate_data(
            reference=training_data.outputs["dataset"],
            current=eval_data.outputs["dataset"],
            feature_names="x,y",
            title="Training data vs serving distribution",
            alpha=drift_alpha,
        ),
        DATA,
    ).set_display_name("validate data: training vs serving")
    trained = pure(
        train_sum_model(
            dataset=training_data.outputs["dataset"],
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            input_scale=input_scale,
            target_scale=target_scale,
            seed=seed,
        ),
        TRAINING,
    ).set_display_name("train")
    evaluated = side_effect(
        with_store_access(
            evaluate_sum_model(
                model=trained.outputs["model"],
                eval_dataset=eval_data.outputs["dataset"],
                max_relative_mae=max_relative_mae,
                champion_tolerance=champion_tolerance,
                data_valid=validation.outputs["Output"],
                block_on_skew=block_on_skew,
                store_endpoint=store_endpoint,
            )
        ),
        SERVING,
    ).set_display_name("evaluate: challenger vs champion")
    deploy_if_passed(
        evaluated,
        trained,
        training_data.outputs["dataset"],
        "sum",
        deploy_target,
        server_url,
        store_endpoint,
        canary_percent,
    )


def summarize(params: Mapping[str, Any], run: LocalRun) -> str:
    """What `make run` prints: this run's evaluation and gate, then what is served and its answers."""
    from components.serving.client import predict_v1
    from components.sum.evaluate import ARTICLE_QUERIES, QueryResult, query_table

    report = run.artifact_path("evaluate-sum-model", "report").read_text()
    deployed = run.output("deploy-model")
    lines = [
        f"run: {run.run_dir}",
        "",
        run.validation_verdict(),
        f"(plots: {run.artifact_path('validate-data', 'report')})",
        "",
        report,
        f"deployed: version {deployed}" if deployed else "deployed: nothing (the previous model keeps serving)",
    ]
    url = params["server_url"]
    try:
        served = predict_v1(url, "sum", [[x, y] for x, y, _ in ARTICLE_QUERIES])
    except RuntimeError as error:
        return "\n".join(lines + [f"model server {url}: no sum model served ({error})"])
    rows = tuple(QueryResult(x, y, p, x + y, a) for (x, y, a), p in zip(ARTICLE_QUERIES, served["predictions"]))
    lines += [
        "",
        f"served: {url}/v1/models/sum:predict, version {served['model_version']}",
        "",
        query_table(rows, "served model"),
    ]
    return "\n".join(lines)
