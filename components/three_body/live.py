"""Ground truth for live three-body queries, and new simulations where the served model is weak.

A query is (t, x2x, x2y): where are the bodies at time t when body 2 starts at x2? The truth
costs one simulation per distinct x2, whatever the number of times asked of it: queries are
grouped by x2, each x2 is simulated once to the latest t asked, and every logged t is read off
that trajectory. Logged t are arbitrary floats, not on the simulator's 1/256 grid, so the
trajectory is interpolated with a 4-point (cubic) Lagrange polynomial on the grid: error
O(h^4); against a direct integration to the exact times it was 2e-11 to 8e-7 at off-grid t up to 3.6
(see components/three_body/tests/test_live.py), far under any network's error (~1e-2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.contract import LabelResult
from components.three_body.dataset import TrajectoryRows, to_rows
from components.three_body.simulate import GRID_STEP, T_MAX_LIMIT, simulate

X_RANGE = (-0.5, 0.0)
Y_RANGE = (0.0, 1.0)


def in_region(x2: np.ndarray) -> np.ndarray:
    """One flag per row of x2 (n, 2): inside Breen's region, where the model is defined."""
    x, y = x2[:, 0], x2[:, 1]
    return (
        np.isfinite(x2).all(axis=1)
        & (x >= X_RANGE[0])
        & (x <= X_RANGE[1])
        & (y >= Y_RANGE[0])
        & (y <= Y_RANGE[1])
        & (np.hypot(x, y) <= 1.0)
    )


def interpolate_grid(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Values on the grid k/256 (T, ...) at arbitrary times t (n,) in [0, (T-1)/256]: cubic Lagrange.

    Each t uses the four grid points around it (shifted inward at the ends); exact on the grid.
    """
    n_grid = len(values)
    if n_grid < 4:
        raise ValueError(f"need at least 4 grid points to interpolate, got {n_grid}")
    s = np.asarray(t, dtype=float) / GRID_STEP
    first = np.clip(np.floor(s).astype(np.int64) - 1, 0, n_grid - 4)
    u = s - first  # position within the 4 nodes at 0, 1, 2, 3
    weights = np.stack(
        [
            -(u - 1) * (u - 2) * (u - 3) / 6,
            u * (u - 2) * (u - 3) / 2,
            -u * (u - 1) * (u - 3) / 2,
            u * (u - 1) * (u - 2) / 6,
        ]
    )  # (4, n)
    out = np.zeros((len(s), *values.shape[1:]))
    for j in range(4):
        out += weights[j].reshape(-1, *([1] * (values.ndim - 1))) * values[first + j]
    return out


@dataclass(frozen=True)
class LabelledTrajectories:
    """The labels and the trajectories they were read from (reused as training data)."""

    result: LabelResult
    x2: np.ndarray  # (m, 2) distinct initial conditions simulated
    converged: np.ndarray  # (m,)
    row_simulation: np.ndarray  # (n,) index into x2 of each row, -1 if not simulated
    times: np.ndarray
    positions: np.ndarray  # (m, T, 3, 2)


def label_with_trajectories(inputs: np.ndarray) -> LabelledTrajectories:
    """Simulate each distinct x2 of the queries once and read every query's t off its trajectory.

    Rows outside Breen's region or with t outside [0, 10], and rows whose simulation did not
    converge, are returned unlabelled (NaN, `labelled` False), never dropped.
    """
    inputs = np.asarray(inputs, dtype=np.float64).reshape(-1, 3)
    t = inputs[:, 0]
    valid = in_region(inputs[:, 1:]) & np.isfinite(t) & (t >= 0) & (t <= T_MAX_LIMIT)
    row_simulation = np.full(len(inputs), -1, dtype=np.int64)
    outputs = np.full((len(inputs), 6), np.nan)
    if not valid.any():
        empty = np.empty((0, 2))
        return LabelledTrajectories(
            LabelResult(outputs, np.zeros(len(inputs), bool), 0),
            empty,
            np.zeros(0, bool),
            row_simulation,
            np.zeros(0),
            np.zeros((0, 0, 3, 2)),
        )
    x2, inverse = np.unique(inputs[valid, 1:], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    row_simulation[valid] = inverse
    rows = np.flatnonzero(valid)
    own_t_max = np.zeros(len(x2))
    np.maximum.at(own_t_max, inverse, t[rows])
    own_t_max = np.maximum(own_t_max, 4 * GRID_STEP)
    simulated = simulate(x2, float(own_t_max.max()))
    positions = simulated.positions  # (m, T, 3, 2), NaN where not converged
    converged = simulated.converged.copy()
    computations = len(x2)
    # A run that failed late may still be good up to the latest t asked of it: rerun those alone.
    retry = np.flatnonzero(~converged & (own_t_max < own_t_max.max()))
    for sim in retry:
        # two grid steps beyond the last t asked, so its interpolation stencil is all simulated
        again = simulate(x2[sim : sim + 1], min(float(own_t_max[sim]) + 2 * GRID_STEP, T_MAX_LIMIT))
        computations += 1
        if again.converged[0]:
            converged[sim] = True
            reached = min(len(again.times), positions.shape[1])
            positions[sim, :reached] = again.positions[0, :reached]
    for sim in np.flatnonzero(converged):
        mine = rows[inverse == sim]
        outputs[mine] = interpolate_grid(positions[sim], t[mine]).reshape(len(mine), 6)
    labelled = np.isfinite(outputs).all(axis=1)
    return LabelledTrajectories(
        LabelResult(outputs, labelled, computations), x2, converged, row_simulation, simulated.times, positions
    )


def label(inputs: np.ndarray) -> LabelResult:
    """True positions (x1, x2, x3) for queries (t, x2x, x2y): the spec's labelling hook."""
    return label_with_trajectories(inputs).result


def draw_near(centers: np.ndarray, n: int, spread: float, seed: int) -> np.ndarray:
    """n new initial conditions, each a Gaussian step of `spread` from a center, inside the region."""
    centers = np.asarray(centers, dtype=float).reshape(-1, 2)
    if n <= 0 or len(centers) == 0:
        return np.empty((0, 2))
    rng = np.random.default_rng(seed)
    drawn: list[np.ndarray] = []
    count = 0
    for _ in range(1000):
        candidates = centers[rng.integers(len(centers), size=2 * n)] + rng.normal(0.0, spread, (2 * n, 2))
        inside = candidates[in_region(candidates)]
        drawn.append(inside)
        count += len(inside)
        if count >= n:
            break
    return np.concatenate(drawn)[:n]


@dataclass(frozen=True)
class SimulatedRows:
    rows: TrajectoryRows
    simulated: int
    converged: int


def simulate_rows(x2: np.ndarray, t_max: float, first_id: int = 0) -> SimulatedRows:
    """Training rows of new simulations, ids from `first_id`; the non-converged are counted."""
    if len(x2) == 0:
        return SimulatedRows(TrajectoryRows(np.empty((0, 3)), np.empty((0, 4)), np.empty(0, np.int64)), 0, 0)
    result = simulate(x2, t_max)
    rows = to_rows(result, x2)
    return SimulatedRows(
        TrajectoryRows(rows.inputs, rows.targets, rows.simulation + first_id), len(x2), int(result.converged.sum())
    )


def in_boxes(x2: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """One flag per row of x2: inside any of the boxes (k, 2, 2) = ((x0, x1), (y0, y1))."""
    inside = np.zeros(len(x2), dtype=bool)
    for (x0, x1), (y0, y1) in boxes:
        inside |= (x2[:, 0] >= x0) & (x2[:, 0] <= x1) & (x2[:, 1] >= y0) & (x2[:, 1] <= y1)
    return inside


@dataclass(frozen=True)
class TargetedData:
    training: TrajectoryRows
    validation: TrajectoryRows
    statistics: dict[str, float]


def _concat(parts: list[TrajectoryRows]) -> TrajectoryRows:
    parts = [p for p in parts if len(p.inputs)]
    if not parts:
        return TrajectoryRows(np.empty((0, 3)), np.empty((0, 4)), np.empty(0, np.int64))
    return TrajectoryRows(
        np.concatenate([p.inputs for p in parts]),
        np.concatenate([p.targets for p in parts]),
        np.concatenate([p.simulation for p in parts]),
    )


def targeted_data(
    queries_x2: np.ndarray,
    weak_boxes: np.ndarray,
    previous: TrajectoryRows | None,
    new_simulations: int,
    t_max: float,
    spread: float,
    validation_fraction: float,
    seed: int,
) -> TargetedData:
    """Training data concentrated where the served model is weak, and a held-out set with the live sample.

    The live sample's distinct x2 are split: `validation_fraction` of them are held out (their
    trajectories to t_max join the held-out set, so the gate scores on the questions people
    asked), the rest join the training data. `new_simulations` initial conditions are drawn near
    the sampled x2 inside the weak boxes (near all sampled x2 when no box is given) and split the
    same way. The previous training rows are kept. Non-converged simulations are counted.
    """
    rng = np.random.default_rng(seed)
    x2 = np.unique(np.asarray(queries_x2, dtype=float).reshape(-1, 2), axis=0)
    x2 = x2[in_region(x2)]
    weak = x2[in_boxes(x2, weak_boxes)] if len(weak_boxes) else x2
    new = draw_near(weak if len(weak) else x2, new_simulations, spread, seed)

    def split(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permutation(len(points))
        held = min(len(points) - 1, max(1, round(len(points) * validation_fraction))) if len(points) > 1 else 0
        return points[order[held:]], points[order[:held]]

    live_train, live_held = split(x2)
    new_train, new_held = split(new)
    first = int(previous.simulation.max()) + 1 if previous is not None and len(previous.simulation) else 0
    train_sim = simulate_rows(np.concatenate([live_train, new_train]), t_max, first)
    held_sim = simulate_rows(np.concatenate([live_held, new_held]), t_max, first + len(live_train) + len(new_train))
    training = _concat([*([previous] if previous is not None else []), train_sim.rows])
    simulated = train_sim.simulated + held_sim.simulated
    converged = train_sim.converged + held_sim.converged
    statistics = {
        "live_initial_conditions": float(len(x2)),
        "weak_initial_conditions": float(len(weak)),
        "new_initial_conditions": float(len(new)),
        "simulations": float(simulated),
        "converged": float(converged),
        "not_converged": float(simulated - converged),
        "previous_rows": float(len(previous.inputs) if previous is not None else 0),
        "training_rows": float(len(training.inputs)),
        "validation_rows": float(len(held_sim.rows.inputs)),
    }
    return TargetedData(training, held_sim.rows, statistics)
