"""The three-body pipeline: simulate Breen's setup, learn it, check it beats the integrator, deploy."""

from kfp import dsl

from components.deploy.component import deploy_model
from components.three_body.component import evaluate_three_body_model, simulate_three_body, train_three_body_model
from components.validation.component import validate_data
from pipelines.store_access import with_store_access

LOCAL = {"simulations": 160, "validation_fraction": 0.1, "epochs": 40, "batch_size": 500, "learning_rate": 0.001}
PRESETS = {
    "local": LOCAL,
    # Breen et al. (2020): 9,900 training and 100 validation simulations, batches of 5000, Adam 5e-4.
    "paper": {"simulations": 10_000, "validation_fraction": 0.01, "epochs": 1000, "batch_size": 5000,
              "learning_rate": 0.0005},
}


@dsl.pipeline(name="three-body", description="Breen et al. (2020): a network in place of a three-body integrator.")
def three_body_pipeline(
    simulations: int = LOCAL["simulations"],
    t_max: float = 3.9,
    validation_fraction: float = LOCAL["validation_fraction"],
    hidden_layers: int = 10,
    units: int = 128,
    learning_rate: float = LOCAL["learning_rate"],
    batch_size: int = LOCAL["batch_size"],
    epochs: int = LOCAL["epochs"],
    seed: int = 0,
    max_mae: float = 0.1,
    champion_tolerance: float = 0.05,
    drift_alpha: float = 0.05,
    deploy_target: str = "local",
    server_url: str = "http://127.0.0.1:8080",
    store_endpoint: str = "",
    canary_percent: int = 0,
):
    simulated = simulate_three_body(
        simulations=simulations, t_max=t_max, validation_fraction=validation_fraction, seed=seed,
    ).set_display_name("simulate trajectories")
    validate_data(
        reference=simulated.outputs["training"], current=simulated.outputs["validation"],
        feature_names="t,x2x,x2y", title="Training vs held-out simulations", alpha=drift_alpha,
    ).set_display_name("validate data: training vs held-out")
    trained = train_three_body_model(
        dataset=simulated.outputs["training"], hidden_layers=hidden_layers, units=units,
        learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, seed=seed,
    ).set_display_name("train")
    evaluated = with_store_access(evaluate_three_body_model(
        model=trained.outputs["model"], validation=simulated.outputs["validation"], t_max=t_max,
        max_mae=max_mae, champion_tolerance=champion_tolerance, store_endpoint=store_endpoint,
    ).set_display_name("evaluate: accuracy, speed, champion"))
    with dsl.If(evaluated.outputs["Output"] == True, name="gate passed"):  # noqa: E712 (a KFP condition)
        with_store_access(deploy_model(
            model=trained.outputs["model"], metrics=evaluated.outputs["metrics"],
            training_data=simulated.outputs["training"], model_name="three-body",
            target=deploy_target, server_url=server_url, store_endpoint=store_endpoint,
            canary_percent=canary_percent,
        ).set_display_name("publish and deploy"))


def validate_params(params: dict) -> None:
    from components.deploy.deploy import TARGETS
    from components.three_body.model import ThreeBodyTrainingConfig
    from components.three_body.simulate import time_grid

    if params["simulations"] < 2:
        raise ValueError(f"simulations must be at least 2, got {params['simulations']}")
    time_grid(params["t_max"])
    if not 0 < params["validation_fraction"] < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {params['validation_fraction']}")
    ThreeBodyTrainingConfig(params["hidden_layers"], params["units"], params["learning_rate"],
                            params["batch_size"], params["epochs"], params["seed"]).validate()
    if not params["max_mae"] > 0:
        raise ValueError(f"max_mae must be positive, got {params['max_mae']}")
    if params["champion_tolerance"] < 0:
        raise ValueError(f"champion_tolerance must be >= 0, got {params['champion_tolerance']}")
    if not 0 <= params["canary_percent"] < 100:
        raise ValueError(f"canary_percent must be in [0, 100), got {params['canary_percent']}")
    if params["deploy_target"] not in TARGETS:
        raise ValueError(f"deploy_target must be one of {', '.join(TARGETS)}, got {params['deploy_target']!r}")


def summarize(params: dict, run_dir) -> str:
    from components.serving.client import predict_v1
    from pipelines.cli import artifact_metadata, artifact_path, task_outputs, validation_verdict

    simulated = artifact_metadata(run_dir, "simulate-three-body", "statistics")
    metrics = artifact_metadata(run_dir, "evaluate-three-body-model", "metrics")
    report = artifact_path(run_dir, "evaluate-three-body-model", "report")
    deployed = task_outputs(run_dir, "deploy-model").get("parameterValues", {}).get("Output")
    lines = [f"run: {run_dir}", validation_verdict(run_dir),
             f"simulations: {simulated['converged']:.0f}/{simulated['simulations']:.0f} converged, "
             f"{simulated['dropped']:.0f} dropped",
             f"held-out MAE: {metrics['mae']:.4f} (per simulation: median {metrics['simulation_mae_median']:.4f}, "
             f"p90 {metrics['simulation_mae_p90']:.4f}, max {metrics['simulation_mae_max']:.4f})",
             f"speed: ANN {metrics['ann_seconds_single'] * 1e3:.2f} ms per query "
             f"({metrics['ann_seconds_batched'] * 1e6:.2f} us batched), integrator "
             f"{metrics['integrator_seconds'] * 1e3:.0f} ms per simulation: "
             f"{metrics['speedup_single']:,.0f}x single, {metrics['speedup_batched']:,.0f}x batched",
             f"report (trajectory plots): {report}",
             f"gate: {'PASSED, deployed version ' + deployed if deployed else 'REFUSED, not deployed'}"]
    try:
        served = predict_v1(params["server_url"], "three-body", [[1.0, -0.2, 0.3]])
        lines.append(f"served: {params['server_url']}/v1/models/three-body:predict, version "
                     f"{served['model_version']}; t=1, x2=(-0.2, 0.3) -> {[round(v, 4) for v in served['predictions'][0]]}")
    except RuntimeError as error:
        lines.append(f"no three-body model served ({error})")
    return "\n".join(lines)
