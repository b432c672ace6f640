"""The monitoring pipeline, made to run as a recurring run: drift and live accuracy, then retrain.

For the sum model it compares the served version's logged traffic with the data that version
was trained on; when they differ it runs the sum pipeline on a range covering what was seen, and
that run's champion gate decides whether the new model replaces the served one. For every model
with a labelling in its spec (sum: x + y; three-body: the simulator) it labels a stratified
sample of the logged queries and reports the live MAE beside the model card's held-out MAE. For
three-body, a live MAE beyond the tolerance triggers a retraining on simulations concentrated
where the served model is weak, gated on a held-out set that includes the live queries.
"""

from collections.abc import Mapping
from typing import Any

from kfp import dsl

from components.monitor.component import (
    collect_served_queries,
    collect_traffic,
    label_served_queries,
    plan_retraining,
    report_live_accuracy,
    sample_served_queries,
)
from components.three_body.component import (
    evaluate_three_body_model,
    targeted_three_body_data,
    train_three_body_model,
)
from components.validation.component import validate_data
from pipelines.controls import DATA, SERVING, SIMULATION, SMALL, TRAINING, pure, side_effect
from pipelines.gate import deploy_if_passed
from pipelines.local_run import LocalRun
from pipelines.store_access import with_store_access
from pipelines.sum import sum_pipeline

MODELS = ("sum", "three-body")


@dsl.pipeline(name="monitor", description="Drift and live accuracy of a served model; retrain when it is off.")
def monitor_pipeline(
    model: str = "sum",
    window_minutes: float = 60.0,
    min_rows: int = 50,
    drift_alpha: float = 0.05,
    size: int = 20_000,
    epochs: int = 40,
    sample_size: int = 400,
    map_cells: int = 4,
    time_slices: int = 4,
    mae_tolerance: float = 0.5,
    new_simulations: int = 200,
    t_max: float = 3.9,
    spread: float = 0.05,
    validation_fraction: float = 0.3,
    three_body_hidden_layers: int = 10,
    three_body_units: int = 128,
    three_body_learning_rate: float = 0.001,
    three_body_batch_size: int = 500,
    max_mae: float = 0.1,
    gate_tolerance: float = 0.05,
    sample_seed: int = 0,
    deploy_target: str = "kserve",
    server_url: str = "",
    store_endpoint: str = "",
):
    """Check a served model's traffic for drift (sum) and its live accuracy (all); retrain when off.

    The three-body retraining's own parameters are prefixed (three_body_*, gate_tolerance,
    sample_seed): a nested pipeline's parameter left unset takes the outer pipeline's parameter
    of the same name, so a plain `batch_size` here would silently become the sum retraining's.

    Args:
        model: The served model to monitor: `sum` or `three-body`.
        window_minutes: How far back to read the traffic log.
        min_rows: Fewer logged rows than this: nothing is compared or labelled.
        drift_alpha: Significance level of the drift checks (sum).
        size: Training pairs of a sum retraining run.
        epochs: Training passes of a retraining run (both models).
        sample_size: Logged queries labelled with the truth, stratified over time and the plane.
        map_cells: Cells per axis of the error map and of the sample's strata.
        time_slices: Slices of the window's request times in the sample's strata.
        mae_tolerance: Retrain (three-body) when live MAE exceeds the held-out MAE by more than this (relative).
        new_simulations: Three-body: new initial conditions simulated near the weak live queries.
        t_max: Three-body: simulated time of the retraining data.
        spread: Three-body: standard deviation of a new initial condition's distance to a weak query's x2.
        validation_fraction: Three-body: share of the live and new initial conditions held out for the gate.
        three_body_hidden_layers: Three-body retraining: hidden Dense layers.
        three_body_units: Three-body retraining: units per hidden layer.
        three_body_learning_rate: Three-body retraining: Adam's learning rate.
        three_body_batch_size: Three-body retraining: rows per gradient step.
        max_mae: Three-body gate: the largest held-out MAE that may ship.
        gate_tolerance: Three-body gate: how much worse (relative) than the served model a new one may be.
        sample_seed: Seed of the sample, the new initial conditions, the split and the weights.
        deploy_target: `kserve` (an InferenceService in the run's namespace), `local` or `none`.
        server_url: The local model server (deploy_target `local` only).
        store_endpoint: Object store host:port; empty uses the fuseml-object-store ConfigMap.
    """
    with dsl.If(model == "sum", name="sum: drift"):
        collected = side_effect(
            with_store_access(
                collect_traffic(
                    model_name="sum",
                    window_minutes=window_minutes,
                    store_endpoint=store_endpoint,
                )
            ),
            SERVING,
        ).set_display_name("collect served traffic")
        with dsl.If(collected.outputs["Output"] >= min_rows, name="enough traffic"):
            validation = pure(
                validate_data(
                    reference=collected.outputs["training_data"],
                    current=collected.outputs["traffic"],
                    feature_names="x,y",
                    title="Served traffic vs training data",
                    alpha=drift_alpha,
                ),
                DATA,
            ).set_display_name("validate: traffic vs training")
            with dsl.If(validation.outputs["Output"] == False, name="drift found"):
                plan = pure(
                    plan_retraining(
                        training_data=collected.outputs["training_data"],
                        traffic=collected.outputs["traffic"],
                    ),
                    SMALL,
                ).set_display_name("plan retraining range")
                sum_pipeline(
                    low=plan.outputs["low"],
                    high=plan.outputs["high"],
                    eval_low=plan.outputs["low"],
                    eval_high=plan.outputs["high"],
                    input_scale=plan.outputs["input_scale"],
                    target_scale=plan.outputs["target_scale"],
                    size=size,
                    epochs=epochs,
                    deploy_target=deploy_target,
                    server_url=server_url,
                    store_endpoint=store_endpoint,
                ).set_display_name("retrain").set_caching_options(False)  # it deploys

    queries = side_effect(
        with_store_access(
            collect_served_queries(
                model_name=model,
                window_minutes=window_minutes,
                store_endpoint=store_endpoint,
            )
        ),
        SERVING,
    ).set_display_name("collect served queries and answers")
    with dsl.If(queries.outputs["Output"] >= min_rows, name="enough queries"):
        sampled = pure(
            sample_served_queries(
                model_name=model,
                queries=queries.outputs["queries"],
                sample_size=sample_size,
                map_cells=map_cells,
                time_slices=time_slices,
                seed=sample_seed,
            ),
            DATA,
        ).set_display_name("sample queries: stratified over time and plane")
        labelled = pure(label_served_queries(model_name=model, sample=sampled.outputs["sample"]), SIMULATION)
        labelled.set_display_name("label the sample with the truth")
        accuracy = pure(
            report_live_accuracy(
                model_name=model,
                labelled=labelled.outputs["labelled"],
                tolerance=mae_tolerance,
            ),
            SMALL,
        ).set_display_name("live accuracy vs held-out")
        with dsl.If(model == "three-body", name="three-body"):  # noqa: SIM117 (one condition each)
            with dsl.If(accuracy.outputs["Output"] == True, name="live MAE too high"):
                data = pure(
                    targeted_three_body_data(
                        weak_regions=accuracy.outputs["weak_regions"],
                        training_data=queries.outputs["training_data"],
                        new_simulations=new_simulations,
                        t_max=t_max,
                        spread=spread,
                        validation_fraction=validation_fraction,
                        seed=sample_seed,
                    ),
                    SIMULATION,
                ).set_display_name("simulate where the model is weak")
                trained = pure(
                    train_three_body_model(
                        dataset=data.outputs["training"],
                        hidden_layers=three_body_hidden_layers,
                        units=three_body_units,
                        learning_rate=three_body_learning_rate,
                        batch_size=three_body_batch_size,
                        epochs=epochs,
                        seed=sample_seed,
                        schedule="cosine",
                        time_budget_s=0.0,
                        patience=0,
                        holdout_fraction=0.0,
                        time_stride=1,
                    ),
                    TRAINING,
                ).set_display_name("retrain")
                evaluated = side_effect(
                    with_store_access(
                        evaluate_three_body_model(
                            model=trained.outputs["model"],
                            validation=data.outputs["validation"],
                            t_max=t_max,
                            max_mae=max_mae,
                            champion_tolerance=gate_tolerance,
                            store_endpoint=store_endpoint,
                        )
                    ),
                    SERVING,
                ).set_display_name("evaluate on held-out with the live sample, vs champion")
                deploy_if_passed(
                    evaluated,
                    trained,
                    data.outputs["training"],
                    "three-body",
                    deploy_target,
                    server_url,
                    store_endpoint,
                    0,
                )


def validate_params(params: Mapping[str, Any]) -> None:
    """The monitor's own parameters (the shared ones are checked by pipelines.params)."""
    if params["model"] not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {params['model']!r}")
    if not params["window_minutes"] > 0:
        raise ValueError(f"window_minutes must be positive, got {params['window_minutes']}")
    if params["min_rows"] < 2:
        raise ValueError(f"min_rows must be at least 2, got {params['min_rows']}")
    if params["size"] <= 0 or params["epochs"] <= 0:
        raise ValueError("size and epochs must be positive")
    for name in (
        "sample_size",
        "map_cells",
        "time_slices",
        "three_body_hidden_layers",
        "three_body_units",
        "three_body_batch_size",
    ):
        if params[name] <= 0:
            raise ValueError(f"{name} must be positive, got {params[name]}")
    if params["new_simulations"] < 0 or not params["mae_tolerance"] >= 0 or not params["spread"] > 0:
        raise ValueError("new_simulations and mae_tolerance must be >= 0, spread positive")
    if not 0 < params["validation_fraction"] < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {params['validation_fraction']}")
    if not 0 < params["t_max"] <= 10:
        raise ValueError(f"t_max must be in (0, 10], got {params['t_max']}")


def _deployed(run: LocalRun) -> str | None:
    """The version a deploy task of this run published (the compiler numbers the second one deploy-model-2)."""
    for task in sorted(run.run_dir.glob("deploy-model*")):
        version = run.output(task.name)
        if version:
            return str(version)
    return None


def _live_lines(run: LocalRun) -> list[str]:
    if not run.task_outputs("report-live-accuracy"):
        return []
    metrics = run.artifact_metadata("report-live-accuracy", "metrics")
    heldout = metrics.get("heldout_mae")
    lines = [
        f"live MAE: {metrics['live_mae']:.6g}",
        f"held-out MAE (model card): {heldout:.6g}" if heldout is not None else "held-out MAE: not in the card",
        f"labelled: {metrics['labelled_rows']:.0f}/{metrics['sampled_rows']:.0f} sampled rows "
        f"({metrics['unlabelled_rows']:.0f} could not be labelled), {metrics['labelling_computations']:.0f} "
        f"truth computations in {metrics['labelling_seconds']:.2f} s",
        f"live accuracy report (error map): {run.artifact_path('report-live-accuracy', 'report')}",
    ]
    return lines


def summarize(params: Mapping[str, Any], run: LocalRun) -> str:
    """What the CLI prints after a monitor run: traffic seen, drift, live MAE and what retraining did."""
    lines = [f"run: {run.run_dir}"]
    rows = run.output("collect-served-queries") or 0
    lines.append(f"{params['model']}: {rows} logged queries in the last {params['window_minutes']:g} minutes")
    if rows < params["min_rows"]:
        lines.append(f"fewer than {params['min_rows']} rows: nothing compared or labelled")
    lines += _live_lines(run)
    if params["model"] == "sum":
        if run.task_outputs("validate-data"):
            lines.append(run.validation_verdict())
            if run.output("validate-data"):
                lines.append("no drift: no retraining")
            else:
                deployed = _deployed(run)
                verdict = f"deployed version {deployed}" if deployed else "the gate kept the champion"
                lines.append(f"retrained; {verdict}")
        return "\n".join(lines)
    if not run.output("report-live-accuracy"):
        return "\n".join(lines + ["live MAE within the tolerance: no retraining"])
    statistics = run.artifact_metadata("targeted-three-body-data", "statistics")
    lines.append(
        f"retraining data: {statistics['simulations']:.0f} new simulations near the weak regions, "
        f"{statistics['not_converged']:.0f} did not converge (counted, not used)"
    )
    if run.task_outputs("evaluate-three-body-model"):
        evaluated = run.artifact_metadata("evaluate-three-body-model", "metrics")
        champion = evaluated.get("champion_mae")
        lines.append(
            f"gate on held-out incl. the live sample: challenger MAE {evaluated['mae']:.4g}"
            + (f", champion {champion:.4g}" if champion is not None else "")
        )
    deployed = _deployed(run)
    lines.append(f"retrained; {'deployed version ' + deployed if deployed else 'the gate kept the champion'}")
    return "\n".join(lines)
