"""The sum-of-two-numbers pipeline: generate, train, evaluate, and deploy only what passes."""

from kfp import dsl

from components.deploy.component import deploy_model
from components.sum.component import evaluate_sum_model, generate_sum_data, train_sum_model
from components.validation.component import validate_data
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
    deploy_target: str = "local",
    server_url: str = "http://127.0.0.1:8080",
    store_endpoint: str = "",
    canary_percent: int = 0,
):
    training_data = generate_sum_data(
        recipe=recipe, size=size, low=low, high=high, small_fraction=small_fraction, seed=seed,
    ).set_display_name("generate training data")
    eval_data = generate_sum_data(
        recipe=eval_recipe, size=eval_size, low=eval_low, high=eval_high, small_fraction=eval_small_fraction,
        seed=eval_seed,
    ).set_display_name("generate evaluation data (serving distribution)")
    validation = validate_data(
        reference=training_data.outputs["dataset"], current=eval_data.outputs["dataset"], feature_names="x,y",
        title="Training data vs serving distribution", alpha=drift_alpha,
    ).set_display_name("validate data: training vs serving")
    trained = train_sum_model(
        dataset=training_data.outputs["dataset"], epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, input_scale=input_scale, target_scale=target_scale, seed=seed,
    ).set_display_name("train")
    evaluated = with_store_access(evaluate_sum_model(
        model=trained.outputs["model"], eval_dataset=eval_data.outputs["dataset"],
        max_relative_mae=max_relative_mae, champion_tolerance=champion_tolerance,
        data_valid=validation.outputs["Output"], block_on_skew=block_on_skew, store_endpoint=store_endpoint,
    ).set_display_name("evaluate: challenger vs champion"))
    with dsl.If(evaluated.outputs["Output"] == True, name="gate passed"):  # noqa: E712 (a KFP condition)
        with_store_access(deploy_model(
            model=trained.outputs["model"], metrics=evaluated.outputs["metrics"],
            training_data=training_data.outputs["dataset"], model_name="sum",
            target=deploy_target, server_url=server_url, store_endpoint=store_endpoint,
            canary_percent=canary_percent,
        ).set_display_name("publish and deploy"))


def validate_params(params: dict) -> None:
    """Fail on bad parameters before any container or training starts."""
    from components.deploy.deploy import TARGETS
    from components.sum.data import SumDataSpec
    from components.sum.model import SumTrainingConfig

    SumDataSpec(params["recipe"], params["size"], params["low"], params["high"],
                params["small_fraction"], params["seed"]).validate()
    try:
        SumDataSpec(params["eval_recipe"], params["eval_size"], params["eval_low"], params["eval_high"],
                    params["eval_small_fraction"], params["eval_seed"]).validate()
    except ValueError as error:
        raise ValueError(f"evaluation data: {error}") from None
    SumTrainingConfig(params["epochs"], params["batch_size"], params["learning_rate"],
                      params["input_scale"], params["target_scale"], params["seed"]).validate()
    if not params["max_relative_mae"] > 0:
        raise ValueError(f"max_relative_mae must be positive, got {params['max_relative_mae']}")
    if params["champion_tolerance"] < 0:
        raise ValueError(f"champion_tolerance must be >= 0, got {params['champion_tolerance']}")
    if not 0 < params["drift_alpha"] < 1:
        raise ValueError(f"drift_alpha must be in (0, 1), got {params['drift_alpha']}")
    if not 0 <= params["canary_percent"] < 100:
        raise ValueError(f"canary_percent must be in [0, 100), got {params['canary_percent']}")
    if params["deploy_target"] not in TARGETS:
        raise ValueError(f"deploy_target must be one of {', '.join(TARGETS)}, got {params['deploy_target']!r}")


def summarize(params: dict, run_dir) -> str:
    """What `make run` prints: this run's evaluation and gate, then what is served and its answers."""
    from components.serving.client import predict_v1
    from components.sum.evaluate import ARTICLE_QUERIES, QueryResult, query_table
    from pipelines.cli import artifact_path, task_outputs, validation_verdict

    report = artifact_path(run_dir, "evaluate-sum-model", "report").read_text()
    deployed = task_outputs(run_dir, "deploy-model").get("parameterValues", {}).get("Output")
    lines = [f"run: {run_dir}", "", validation_verdict(run_dir),
             f"(plots: {artifact_path(run_dir, 'validate-data', 'report')})", "", report,
             f"deployed: version {deployed}" if deployed else "deployed: nothing (the previous model keeps serving)"]
    url = params["server_url"]
    try:
        served = predict_v1(url, "sum", [[x, y] for x, y, _ in ARTICLE_QUERIES])
    except RuntimeError as error:
        return "\n".join(lines + [f"model server {url}: no sum model served ({error})"])
    rows = tuple(QueryResult(x, y, p, x + y, a) for (x, y, a), p in zip(ARTICLE_QUERIES, served["predictions"]))
    lines += ["", f"served: {url}/v1/models/sum:predict, version {served['model_version']}", "",
              query_table(rows, "served model")]
    return "\n".join(lines)
