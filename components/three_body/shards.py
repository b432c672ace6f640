"""Simulation in shards: the same initial conditions and trajectories as one process, in pieces.

A cluster simulates the paper's 10,000 runs in parallel pods (`dsl.ParallelFor` over
`shard_starts`), each shard caches on its own, and `gather` joins them. Shard k simulates
initial conditions [start, start + size) of `sample_initial_x2(simulations, seed)`, whose
first m draws do not depend on how many are drawn, and every simulation steps on its own:
the gathered rows are the rows one process would make, up to the rounding of numpy's
vectorized loops (last bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.three_body import dataset
from components.three_body.coverage import Dropped
from components.three_body.simulate import ProgressCallback, Status, sample_initial_x2, simulate


@dataclass(frozen=True)
class Shard:
    """One shard's initial conditions, what became of each, and the rows of the converged ones."""

    start: int
    x2: np.ndarray  # (n, 2)
    status: np.ndarray  # (n,) `Status` codes: CONVERGED when the largest twin-run difference is within the bound
    breen_converged: np.ndarray  # (n,) bool: Breen's looser criterion, reported beside ours
    energy_error: np.ndarray  # (n,)
    rows: dataset.TrajectoryRows  # simulation ids are global: start + index in the shard

    @property
    def converged(self) -> np.ndarray:
        return np.asarray(self.status == Status.CONVERGED)


def shard_starts(simulations: int, shard_size: int) -> list[int]:
    if simulations < 1:
        raise ValueError(f"simulations must be positive, got {simulations}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    return list(range(0, simulations, shard_size))


def simulate_shard(
    start: int, shard_size: int, simulations: int, t_max: float, seed: int, progress: ProgressCallback | None = None
) -> Shard:
    if not 0 <= start < simulations:
        raise ValueError(f"shard start {start} is outside the {simulations} simulations")
    x2 = sample_initial_x2(simulations, seed)[start : start + shard_size]
    result = simulate(x2, t_max, progress=progress)
    rows = dataset.to_rows(result, x2)
    global_rows = dataset.TrajectoryRows(rows.inputs, rows.targets, rows.simulation + start)
    return Shard(start, x2, result.status, result.breen_converged, result.energy_error, global_rows)


def save_shard(path: Path, shard: Shard) -> None:
    with path.open("wb") as f:
        np.savez(
            f,
            start=shard.start,
            x2=shard.x2,
            status=shard.status,
            breen_converged=shard.breen_converged,
            energy_error=shard.energy_error,
            inputs=shard.rows.inputs,
            targets=shard.rows.targets,
            simulation=shard.rows.simulation,
        )


def load_shard(path: Path) -> Shard:
    with np.load(path) as data:
        rows = dataset.TrajectoryRows(data["inputs"], data["targets"], data["simulation"])
        return Shard(
            int(data["start"]), data["x2"], data["status"], data["breen_converged"], data["energy_error"], rows
        )


@dataclass(frozen=True)
class Gathered:
    training: dataset.TrajectoryRows
    validation: dataset.TrajectoryRows
    dropped: Dropped  # the initial conditions that gave no rows, and why
    statistics: dict[str, float]


def gather(shards: Sequence[Shard], validation_fraction: float, seed: int) -> Gathered:
    """Join the shards (in any order) and split by simulation, exactly as one process would.

    The dropped initial conditions are kept with their reasons: they mark where the training data
    have holes, for the data map and the model card.
    """
    ordered = sorted(shards, key=lambda shard: shard.start)
    converged = np.concatenate([s.converged for s in ordered])
    dropped = Dropped(
        np.concatenate([s.x2[~s.converged] for s in ordered]).reshape(-1, 2),
        np.concatenate([s.status[~s.converged] for s in ordered]),
    )
    breen_converged = np.concatenate([s.breen_converged for s in ordered])
    energy_error = np.concatenate([s.energy_error for s in ordered])
    simulation_of_rows = np.concatenate([s.rows.simulation for s in ordered])
    train_ids, validation_ids = dataset.split_by_simulation(simulation_of_rows, validation_fraction, seed)
    simulations = len(converged)
    statistics = {
        "simulations": float(simulations),
        "shards": float(len(ordered)),
        "converged": float(converged.sum()),
        "dropped": float(simulations - converged.sum()),
        "converged_by_breen_criterion": float(breen_converged.sum()),
        "training_simulations": float(len(train_ids)),
        "validation_simulations": float(len(validation_ids)),
        "max_energy_error_kept": float(energy_error[converged].max()),
        **{f"dropped_{reason}": float(count) for reason, count in dropped.counts().items()},
    }
    return Gathered(_rows_of(ordered, train_ids), _rows_of(ordered, validation_ids), dropped, statistics)


def _rows_of(shards: Sequence[Shard], simulations: np.ndarray) -> dataset.TrajectoryRows:
    """The shards' rows of `simulations`, copied into arrays of their final size.

    Joining every row first and selecting afterwards held the data three times at once (3.9 GB
    for the `standard` preset's 20,000 simulations); this holds it twice: the shards and the result.
    """
    masks = [np.isin(s.rows.simulation, simulations) for s in shards]
    counts = [int(mask.sum()) for mask in masks]
    columns = ("inputs", "targets", "simulation")
    first = {name: getattr(shards[0].rows, name) for name in columns}
    joined = {name: np.empty((sum(counts), *a.shape[1:]), a.dtype) for name, a in first.items()}
    at = 0
    for shard, mask, count in zip(shards, masks, counts, strict=True):
        for name in columns:
            joined[name][at : at + count] = getattr(shard.rows, name)[mask]
        at += count
    return dataset.TrajectoryRows(**joined)
