"""KFP components of the three-body pipeline: thin wrappers over `components.three_body`."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import BASE_IMAGE, TRAINER_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def plan_simulation_shards(simulations: int, shard_size: int) -> list:
    """Where each shard of the simulation starts: one pod per shard on a cluster.

    Args:
        simulations: Initial conditions to simulate in all.
        shard_size: Initial conditions per shard (per pod).
    """
    from components.three_body.shards import shard_starts

    starts = shard_starts(simulations, shard_size)
    print(f"{simulations} simulations in {len(starts)} shard(s) of up to {shard_size}", flush=True)
    return starts


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def simulate_three_body_shard(
    start: int,
    shard_size: int,
    simulations: int,
    t_max: float,
    seed: int,
    shard: Output[Dataset],
):
    """Simulate one shard of Breen's initial conditions; the runs that did not converge are kept as counts.

    Args:
        start: Index of the shard's first initial condition.
        shard_size: Initial conditions in a full shard.
        simulations: Initial conditions in all (the shard's draws depend only on this and the seed).
        t_max: Simulated time (at most 10); positions every 1/256.
        seed: Random seed of the initial conditions.
        shard: The shard's initial conditions, outcomes and rows (npz).
    """
    from pathlib import Path

    from components.three_body.shards import save_shard, simulate_shard

    result = simulate_shard(
        start,
        shard_size,
        simulations,
        t_max,
        seed,
        progress=lambda done, total: print(f"simulated {done}/{total}", flush=True),
    )
    save_shard(Path(shard.path), result)
    converged = int(result.converged.sum())
    shard.metadata.update({"start": start, "simulations": len(result.x2), "converged": converged})
    print(f"shard at {start}: {converged}/{len(result.x2)} simulations converged", flush=True)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def gather_three_body_simulations(
    shards: Input[list[Dataset]],
    validation_fraction: float,
    seed: int,
    training: Output[Dataset],
    validation: Output[Dataset],
    statistics: Output[Metrics],
    data_map: Output[HTML],
):
    """Join the shards and split them by simulation into training and held-out rows; map the dropped runs.

    Args:
        shards: The shards' outputs, in any order.
        validation_fraction: Share of the converged simulations held out for evaluation.
        seed: Random seed of the split.
        training: Rows (t, x2x, x2y) -> (x1, x2) of the training simulations, and the dropped initial
            conditions with their reasons (`dropped_x2`, `dropped_status`): the holes of the model card.
        validation: The same rows for the held-out simulations.
        statistics: Simulated, converged and dropped counts (by reason) and the energy error.
        data_map: HTML map of kept and dropped initial conditions in the (x2x, x2y) plane.
    """
    from pathlib import Path

    from components.store.model_registry import file_sha256
    from components.three_body import dataset
    from components.three_body.coverage import map_html
    from components.three_body.shards import gather, load_shard

    gathered = gather([load_shard(Path(s.path)) for s in shards], validation_fraction, seed)
    dataset.save(Path(training.path), gathered.training, gathered.dropped)
    dataset.save(Path(validation.path), gathered.validation)
    Path(data_map.path).write_text(
        map_html(gathered.training.initial_x2(), gathered.validation.initial_x2(), gathered.dropped)
    )
    training.metadata["sha256"] = file_sha256(Path(training.path))
    for key, value in gathered.statistics.items():
        statistics.log_metric(key, value)
    stats = gathered.statistics
    print(
        f"{stats['converged']:.0f}/{stats['simulations']:.0f} simulations converged; {stats['dropped']:.0f} dropped",
        flush=True,
    )


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train_three_body_model(
    dataset: Input[Dataset],
    hidden_layers: int,
    units: int,
    learning_rate: float,
    batch_size: int,
    epochs: int,
    seed: int,
    schedule: str,
    time_budget_s: float,
    patience: int,
    holdout_fraction: float,
    time_stride: int,
    model: Output[Model],
):
    """Train Breen's network on (t, x2(0)) -> (x1, x2) and export it with x3 appended and its card.

    Args:
        dataset: Training rows from `gather_three_body_simulations`.
        hidden_layers: Number of hidden Dense layers (Breen: 10).
        units: Units per hidden layer (Breen: 128).
        learning_rate: Adam's peak learning rate.
        batch_size: Rows per gradient step.
        epochs: Passes over the data at most.
        seed: Random seed of the weights, the shuffling and the hold-out.
        schedule: `cosine` (decay to 0 over the epochs or the time budget, whichever ends first) or `constant`.
        time_budget_s: Stop after this many seconds of training (0: no budget).
        patience: Stop after this many epochs without a better held-out MAE (0: never early).
        holdout_fraction: Share of the training simulations held out to pick the best epoch (0: none).
        time_stride: Fit on every k-th output time of each trajectory (1: all of them).
        model: The SavedModel; its metadata holds the model card (schema, envelope less the holes
            around the dropped initial conditions, data hash).
    """
    from pathlib import Path

    from components.contract import ModelCard
    from components.three_body import dataset as rows_io
    from components.three_body.coverage import holes
    from components.three_body.model import ThreeBodyTrainingConfig, train_on_rows
    from components.three_body.spec import SPEC
    from components.training import save_trained

    config = ThreeBodyTrainingConfig(
        hidden_layers,
        units,
        learning_rate,
        batch_size,
        epochs,
        seed,
        schedule,
        time_budget_s,
        patience,
        holdout_fraction,
        time_stride,
    )
    rows = rows_io.load(Path(dataset.path))
    trained = train_on_rows(
        rows,
        config,
        on_progress=lambda p: print(
            f"epoch {p.epoch} at {p.seconds:.0f}s: MAE {p.loss:.4f}, held-out MAE {p.validation_mae:.4f}, "
            f"learning rate {p.learning_rate:.2e}",
            flush=True,
        ),
    )
    card = ModelCard.for_training(
        SPEC,
        rows.inputs,
        config.as_dict(),
        dataset.metadata.get("sha256", ""),
        holes=holes(rows_io.load_dropped(Path(dataset.path))),
    )
    save_trained(trained, Path(model.path), card, model.metadata)


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate_three_body_model(
    model: Input[Model],
    validation: Input[Dataset],
    t_max: float,
    max_mae: float,
    champion_tolerance: float,
    store_endpoint: str,
    metrics: Output[Metrics],
    report: Output[HTML],
) -> bool:
    """Accuracy and speed on held-out simulations, against the champion; True if it may ship.

    Args:
        model: The newly trained model (the challenger).
        validation: Rows of the held-out simulations.
        t_max: Simulated time of the rows (sets the report's time windows).
        max_mae: The challenger's held-out MAE must not exceed this.
        champion_tolerance: How much worse (relative) than the served model the challenger may be.
        store_endpoint: Object store host:port; empty means the MINIO_ENDPOINT of the pod.
        metrics: MAE overall, by time window and per simulation, speed, and the gate's verdict.
        report: HTML: the decision, MAE by time window and per simulation beside Breen et al.'s figures,
            the gate's threshold, trajectory plots.
    """
    from pathlib import Path

    from components.deploy.champion import decide, load_champion
    from components.store.object_store import ObjectStore
    from components.three_body import dataset
    from components.three_body.evaluate import evaluate, report_html, trajectory_plots
    from components.three_body.model import load_predictor

    rows = dataset.load(Path(validation.path))
    predict = load_predictor(Path(model.path))
    challenger = evaluate(predict, rows, t_max)
    champion = load_champion(ObjectStore.from_env(endpoint=store_endpoint), "three-body", load_predictor)
    champion_mae = float(abs(champion[1](rows.inputs)[:, :4] - rows.targets).mean()) if champion else None
    decision = decide(challenger.mae, max_mae, champion_mae, champion[0] if champion else None, champion_tolerance)
    for key, value in challenger.metrics().items():
        metrics.log_metric(key, value)
    if champion_mae is not None:
        metrics.log_metric("champion_mae", champion_mae)
    metrics.log_metric("gate_passed", float(decision.deploy))
    Path(report.path).write_text(report_html(challenger, decision.reason, trajectory_plots(predict, rows), max_mae))
    print(decision.reason, flush=True)
    return decision.deploy


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def targeted_three_body_data(
    weak_regions: Input[Dataset],
    training_data: Input[Dataset],
    new_simulations: int,
    t_max: float,
    spread: float,
    validation_fraction: float,
    seed: int,
    training: Output[Dataset],
    validation: Output[Dataset],
    statistics: Output[Metrics],
):
    """Simulate where the served model is weak: the live queries and new initial conditions near them.

    Args:
        weak_regions: The weak cells and the labelled live queries from `report_live_accuracy`.
        training_data: The served version's training rows (kept, with their dropped initial conditions; may be empty).
        new_simulations: New initial conditions drawn near the weak live queries.
        t_max: Simulated time of the new trajectories.
        spread: Standard deviation of the step from a weak query's x2 to a new initial condition.
        validation_fraction: Share of the live and of the new initial conditions held out for the gate.
        seed: Random seed of the draws and the split.
        training: Previous rows plus the new simulations' rows; the previous dropped initial conditions.
        validation: Held-out rows: trajectories of held-out live queries and new initial conditions.
        statistics: Simulated, converged and non-converged counts, rows.
    """
    from pathlib import Path

    import numpy as np

    from components.store.model_registry import file_sha256
    from components.three_body import dataset
    from components.three_body.live import targeted_data

    with np.load(weak_regions.path) as data:
        boxes, inputs, labelled = data["boxes"], data["inputs"], data["labelled"]
    has_previous = Path(training_data.path).stat().st_size > 0
    previous = dataset.load(Path(training_data.path)) if has_previous else None
    made = targeted_data(inputs[:, 1:], boxes, previous, new_simulations, t_max, spread, validation_fraction, seed)
    dataset.save(
        Path(training.path), made.training, dataset.load_dropped(Path(training_data.path)) if has_previous else None
    )
    dataset.save(Path(validation.path), made.validation)
    training.metadata["sha256"] = file_sha256(Path(training.path))
    for key, value in made.statistics.items():
        statistics.log_metric(key, value)
    s = made.statistics
    print(
        f"targeted data: {s['simulations']:.0f} simulations ({s['weak_initial_conditions']:.0f} weak live x2, "
        f"{s['new_initial_conditions']:.0f} new), {s['not_converged']:.0f} did not converge (counted, not used); "
        f"{s['training_rows']:.0f} training rows, {s['validation_rows']:.0f} held out; "
        f"{int((~labelled).sum())} sampled queries could not be labelled",
        flush=True,
    )
