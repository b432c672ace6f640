"""Turn simulated trajectories into the network's rows, split by simulation, never by time point.

Rows are (t, x2x(0), x2y(0)) -> (x1x, x1y, x2x, x2y) at t, as in Breen et al. Points of one
trajectory are strongly correlated, so a random split by row would leak validation into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.three_body.coverage import Dropped
from components.three_body.simulate import GRID_STEP, SimulationResult

INPUT_COLUMNS = ("t", "x2x", "x2y")


@dataclass(frozen=True)
class TrajectoryRows:
    inputs: np.ndarray  # (rows, 3)
    targets: np.ndarray  # (rows, 4)
    simulation: np.ndarray  # (rows,) index of the simulation each row came from

    def subset(self, simulations: np.ndarray) -> TrajectoryRows:
        keep = np.isin(self.simulation, simulations)
        return TrajectoryRows(self.inputs[keep], self.targets[keep], self.simulation[keep])

    def initial_x2(self) -> np.ndarray:
        """(x2x, x2y) of each simulation, in order of its id: a sort of the ids, not of the rows' x2
        (np.unique over the rows' (x2x, x2y) took 4.7 s of make run's 9 s gather)."""
        _, first = np.unique(self.simulation, return_index=True)
        return self.inputs[first, 1:]


def to_rows(result: SimulationResult, x2: np.ndarray) -> TrajectoryRows:
    """Rows of the converged simulations only: the others have no trustworthy trajectory."""
    kept = np.flatnonzero(result.converged)
    times = result.times
    n_times = len(times)
    inputs = np.empty((len(kept) * n_times, 3))
    inputs[:, 0] = np.tile(times, len(kept))
    inputs[:, 1:] = np.repeat(x2[kept], n_times, axis=0)
    targets = result.positions[kept][:, :, :2, :].reshape(-1, 4)
    return TrajectoryRows(inputs, targets, np.repeat(kept, n_times))


def every_kth_time(rows: TrajectoryRows, k: int) -> TrajectoryRows:
    """Every k-th output time of each trajectory, starting at a different time in each simulation,
    so that together the simulations still cover every time."""
    if k == 1:
        return rows
    step = np.rint(rows.inputs[:, 0] / GRID_STEP).astype(np.int64)
    keep = (step + rows.simulation) % k == 0
    return TrajectoryRows(rows.inputs[keep], rows.targets[keep], rows.simulation[keep])


SPLIT_STREAM = 0x5117  # keeps the split's random stream apart from the initial conditions


def split_by_simulation(
    simulations: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (training, validation) simulation ids; at least one on each side."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    ids = np.unique(simulations)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 converged simulations to split, got {len(ids)}")
    # A stream of its own: with the bare seed, the permutation reuses the bits that drew the
    # initial conditions (sample_initial_x2(n, seed)), and which runs are held out correlates
    # with where they start (seed 0: held-out x2y drawn from another distribution, KS p = 0.002).
    shuffled = np.random.default_rng([seed, SPLIT_STREAM]).permutation(ids)
    n_validation = min(len(ids) - 1, max(1, round(len(ids) * validation_fraction)))
    return np.sort(shuffled[n_validation:]), np.sort(shuffled[:n_validation])


def save(path: Path, rows: TrajectoryRows, dropped: Dropped | None = None) -> None:
    """Rows, and with training rows the initial conditions that gave none (the data's holes)."""
    arrays = {"inputs": rows.inputs, "targets": rows.targets, "simulation": rows.simulation}
    if dropped is not None:
        arrays.update(dropped_x2=dropped.x2, dropped_status=dropped.status)
    with path.open("wb") as f:
        np.savez(f, allow_pickle=False, **arrays)


def load(path: Path) -> TrajectoryRows:
    with np.load(path) as data:
        return TrajectoryRows(data["inputs"], data["targets"], data["simulation"])


def load_dropped(path: Path) -> Dropped:
    """The dropped initial conditions saved with the rows; none for data saved without them."""
    with np.load(path) as data:
        if "dropped_x2" not in data.files:
            return Dropped(np.empty((0, 2)), np.empty(0, dtype=np.uint8))
        return Dropped(data["dropped_x2"], data["dropped_status"])
