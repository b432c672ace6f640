"""The three-body pipeline: simulate Breen's setup, learn it, check it beats the integrator, deploy."""

from collections.abc import Mapping
from typing import Any

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.pipeline_channel import PipelineChannel

from components.gpu_training import train_three_body_model_gpu
from components.three_body.component import (
    evaluate_three_body_model,
    gather_three_body_simulations,
    plan_simulation_shards,
    simulate_three_body_shard,
    train_three_body_model,
)
from components.validation.component import validate_data
from pipelines.controls import DATA, SERVING, SIMULATION, SMALL, TRAINING, pure, side_effect
from pipelines.gate import deploy_if_passed
from pipelines.local_run import LocalRun
from pipelines.store_access import with_store_access


def _evaluate_and_deploy(
    trained: PipelineTask,
    validation: PipelineChannel,
    training_data: PipelineChannel,
    t_max: PipelineChannel,
    max_mae: PipelineChannel,
    champion_tolerance: PipelineChannel,
    deploy_target: PipelineChannel,
    server_url: PipelineChannel,
    store_endpoint: PipelineChannel,
    canary_percent: PipelineChannel,
) -> None:
    evaluated = side_effect(
        with_store_access(
            evaluate_three_body_model(
                model=trained.outputs["model"],
                validation=validation,
                t_max=t_max,
                max_mae=max_mae,
                champion_tolerance=champion_tolerance,
                store_endpoint=store_endpoint,
            )
        ),
        SERVING,
    ).set_display_name("evaluate: accuracy, speed, champion")
    deploy_if_passed(
        evaluated, trained, training_data, "three-body", deploy_target, server_url, store_endpoint, canary_percent
    )


@dsl.pipeline(name="three-body", description="Breen et al. (2020): a network in place of a three-body integrator.")
def three_body_pipeline(
    simulations: int = 7000,
    t_max: float = 3.9,
    validation_fraction: float = 0.2,
    hidden_layers: int = 10,
    units: int = 128,
    learning_rate: float = 3e-3,
    batch_size: int = 1000,
    epochs: int = 5,
    schedule: str = "cosine",
    time_budget_s: float = 120.0,
    patience: int = 0,
    holdout_fraction: float = 0.02,
    time_stride: int = 2,
    seed: int = 0,
    shard_size: int = 1750,
    accelerator_type: str = "nvidia.com/gpu",
    accelerator_count: int = 0,
    max_mae: float = 0.08,
    champion_tolerance: float = 0.05,
    drift_alpha: float = 0.05,
    deploy_target: str = "kserve",
    server_url: str = "",
    store_endpoint: str = "",
    canary_percent: int = 0,
):
    """Simulate Breen's three-body setup, train the network that replaces the integrator, deploy if it passes.

    The defaults are the `local` preset (components/three_body/presets.py); `standard` reaches
    Breen's accuracy in an hour on 2 cores, `paper` is Breen's scale for a GPU node.

    Args:
        simulations: Initial conditions to simulate (Breen: 10,000).
        t_max: Simulated time, at most 10 (Breen's best network: 3.9).
        validation_fraction: Share of converged simulations held out for evaluation.
        hidden_layers: Hidden Dense layers (Breen: 10).
        units: Units per hidden layer (Breen: 128).
        learning_rate: Adam's peak learning rate.
        batch_size: Rows per gradient step.
        epochs: Training passes over the data at most.
        schedule: `cosine` (decay to 0 over the epochs or the time budget, whichever ends first) or `constant`.
        time_budget_s: Stop training after this many seconds (0: no budget).
        patience: Stop after this many epochs without a better held-out MAE (0: never early).
        holdout_fraction: Share of the training simulations held out to pick the best epoch.
        time_stride: Train on every k-th output time of each trajectory (1: all; the gate sees all).
        seed: Seed of the initial conditions, the split and the weights.
        shard_size: Simulations per pod; the shards run in parallel and are cached one by one.
        accelerator_type: The trainer's accelerator resource, e.g. nvidia.com/gpu (with accelerator_count > 0).
        accelerator_count: Accelerators for the trainer; 0 trains on CPU.
        max_mae: Gate: the largest held-out MAE that may ship.
        champion_tolerance: Gate: how much worse (relative) than the served model a new one may be.
        drift_alpha: Significance level of the data-validation checks.
        deploy_target: `kserve` (an InferenceService in the run's namespace), `local` or `none`.
        server_url: The local model server (deploy_target `local` only).
        store_endpoint: Object store host:port; empty uses the fuseml-object-store ConfigMap.
        canary_percent: Share of traffic a new version gets first on KServe (0: all at once).
    """
    plan = pure(plan_simulation_shards(simulations=simulations, shard_size=shard_size), SMALL)
    plan.set_display_name("plan simulation shards")
    with dsl.ParallelFor(plan.output, name="simulation shards") as start:
        shard = pure(
            simulate_three_body_shard(
                start=start, shard_size=shard_size, simulations=simulations, t_max=t_max, seed=seed
            ),
            SIMULATION,
        )
        shard.set_display_name("simulate a shard of trajectories")
    simulated = pure(
        gather_three_body_simulations(
            shards=dsl.Collected(shard.outputs["shard"]), validation_fraction=validation_fraction, seed=seed
        ),
        DATA,
    )
    simulated.set_display_name("gather shards, split by simulation")
    pure(
        validate_data(
            reference=simulated.outputs["training"],
            current=simulated.outputs["validation"],
            feature_names="t,x2x,x2y",
            title="Training vs held-out simulations",
            alpha=drift_alpha,
            unit_column="simulation",
            see_also="where the simulations that did not converge lie in the (x2x, x2y) plane, and the holes "
            "the model card records around them: the data_map report of 'gather shards, split by simulation'.",
        ),
        DATA,
    ).set_display_name("validate data: training vs held-out")
    training = dict(
        dataset=simulated.outputs["training"],
        hidden_layers=hidden_layers,
        units=units,
        learning_rate=learning_rate,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        schedule=schedule,
        time_budget_s=time_budget_s,
        patience=patience,
        holdout_fraction=holdout_fraction,
        time_stride=time_stride,
    )
    deployment = dict(
        validation=simulated.outputs["validation"],
        training_data=simulated.outputs["training"],
        t_max=t_max,
        max_mae=max_mae,
        champion_tolerance=champion_tolerance,
        deploy_target=deploy_target,
        server_url=server_url,
        store_endpoint=store_endpoint,
        canary_percent=canary_percent,
    )
    # The CPU branch first, so its tasks keep the plain names a local run (and its summary) reads.
    # Each branch carries on with its own model: dsl.OneOf over artifacts fails under kfp 2.17's
    # local runner, which `make run` uses.
    with dsl.If(accelerator_count == 0, name="train on CPU"):
        _evaluate_and_deploy(pure(train_three_body_model(**training), TRAINING).set_display_name("train"), **deployment)
    with dsl.Else(name="train on an accelerator"):
        on_accelerator = pure(train_three_body_model_gpu(**training), TRAINING)
        on_accelerator.set_display_name("train on an accelerator")
        on_accelerator.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_count)
        _evaluate_and_deploy(on_accelerator, **deployment)


def summarize(params: Mapping[str, Any], run: LocalRun) -> str:
    """What `make run` prints: simulation, accuracy, speed, the gate, and the served model's answer."""
    from components.serving.client import predict_v1

    simulated = run.artifact_metadata("gather-three-body-simulations", "statistics")
    metrics = run.artifact_metadata("evaluate-three-body-model", "metrics")
    report = run.artifact_path("evaluate-three-body-model", "report")
    deployed = run.output("deploy-model")
    lines = [
        f"run: {run.run_dir}",
        run.validation_verdict(),
        f"simulations: {simulated['converged']:.0f}/{simulated['simulations']:.0f} converged (largest "
        f"twin-run difference <= 1e-4; by Breen's criterion {simulated['converged_by_breen_criterion']:.0f}), "
        f"{simulated['dropped']:.0f} dropped; where they lie, and the holes the model card records: "
        f"{run.artifact_path('gather-three-body-simulations', 'data_map')}",
        f"held-out MAE: {metrics['mae']:.4f} (per simulation: median {metrics['simulation_mae_median']:.4f}, "
        f"p90 {metrics['simulation_mae_p90']:.4f}, max {metrics['simulation_mae_max']:.4f})",
        f"speed: ANN {metrics['ann_seconds_single'] * 1e3:.2f} ms per query "
        f"({metrics['ann_seconds_batched'] * 1e6:.2f} us batched), integrator "
        f"{metrics['integrator_seconds'] * 1e3:.0f} ms per simulation: "
        f"{metrics['speedup_single']:,.0f}x single, {metrics['speedup_batched']:,.0f}x batched",
        f"report (trajectory plots): {report}",
        f"gate: {'PASSED, deployed version ' + deployed if deployed else 'REFUSED, not deployed'}",
    ]
    try:
        served = predict_v1(params["server_url"], "three-body", [[1.0, -0.2, 0.3]])
        lines.append(
            f"served: {params['server_url']}/v1/models/three-body:predict, version "
            f"{served['model_version']}; t=1, x2=(-0.2, 0.3) -> {[round(v, 4) for v in served['predictions'][0]]}"
        )
    except RuntimeError as error:
        lines.append(f"no three-body model served ({error})")
    return "\n".join(lines)
