"""The monitoring pipeline, made to run as a recurring run: detect skew or drift, then retrain.

It compares the served sum model's logged traffic with the data that model was trained on;
when they differ it runs the sum pipeline on a range covering what was seen, and that run's
champion gate decides whether the new model replaces the served one.
"""

from collections.abc import Mapping
from typing import Any

from kfp import dsl

from components.monitor.component import collect_traffic, plan_retraining
from components.validation.component import validate_data
from pipelines.controls import DATA, SERVING, SMALL, pure, side_effect
from pipelines.local_run import LocalRun
from pipelines.store_access import with_store_access
from pipelines.sum import sum_pipeline


@dsl.pipeline(name="monitor", description="Compare served traffic with training data; retrain on drift.")
def monitor_pipeline(
    window_minutes: float = 60.0,
    min_rows: int = 50,
    drift_alpha: float = 0.05,
    size: int = 20_000,
    epochs: int = 40,
    deploy_target: str = "kserve",
    server_url: str = "",
    store_endpoint: str = "",
):
    """Compare the served sum model's traffic with its training data; on drift, retrain and let the gate decide.

    Args:
        window_minutes: How far back to read the traffic log.
        min_rows: Fewer logged rows than this: nothing is compared.
        drift_alpha: Significance level of the checks.
        size: Training pairs of a retraining run.
        epochs: Training passes of a retraining run.
        deploy_target: `kserve` (an InferenceService in the run's namespace), `local` or `none`.
        server_url: The local model server (deploy_target `local` only).
        store_endpoint: Object store host:port; empty uses the fuseml-object-store ConfigMap.
    """
    collected = side_effect(with_store_access(collect_traffic(
        model_name="sum", window_minutes=window_minutes, store_endpoint=store_endpoint,
    )), SERVING).set_display_name("collect served traffic")
    with dsl.If(collected.outputs["Output"] >= min_rows, name="enough traffic"):
        validation = pure(validate_data(
            reference=collected.outputs["training_data"], current=collected.outputs["traffic"],
            feature_names="x,y", title="Served traffic vs training data", alpha=drift_alpha,
        ), DATA).set_display_name("validate: traffic vs training")
        with dsl.If(validation.outputs["Output"] == False, name="drift found"):  # noqa: E712 (a KFP condition)
            plan = pure(plan_retraining(
                training_data=collected.outputs["training_data"], traffic=collected.outputs["traffic"],
            ), SMALL).set_display_name("plan retraining range")
            sum_pipeline(
                low=plan.outputs["low"], high=plan.outputs["high"], eval_low=plan.outputs["low"],
                eval_high=plan.outputs["high"], input_scale=plan.outputs["input_scale"],
                target_scale=plan.outputs["target_scale"], size=size, epochs=epochs,
                deploy_target=deploy_target, server_url=server_url, store_endpoint=store_endpoint,
            ).set_display_name("retrain").set_caching_options(False)  # it deploys


def validate_params(params: Mapping[str, Any]) -> None:
    """The monitor's own parameters (the shared ones are checked by pipelines.params)."""
    if not params["window_minutes"] > 0:
        raise ValueError(f"window_minutes must be positive, got {params['window_minutes']}")
    if params["min_rows"] < 2:
        raise ValueError(f"min_rows must be at least 2, got {params['min_rows']}")
    if params["size"] <= 0 or params["epochs"] <= 0:
        raise ValueError("size and epochs must be positive")


def summarize(params: Mapping[str, Any], run: LocalRun) -> str:
    """What the CLI prints after a monitor run: traffic seen, the verdict, and what retraining did."""
    rows = run.output("collect-traffic") or 0
    lines = [f"run: {run.run_dir}", f"traffic: {rows} logged rows in the last {params['window_minutes']:g} minutes"]
    if not run.task_outputs("validate-data"):
        return "\n".join(lines + [f"fewer than {params['min_rows']} rows: nothing compared"])
    lines.append(run.validation_verdict())
    if run.output("validate-data"):
        return "\n".join(lines + ["no drift: no retraining"])
    deployed = run.output("deploy-model")
    return "\n".join(lines + [f"retrained; {'deployed version ' + deployed if deployed else 'the gate kept the champion'}"])
