"""Planar three-body simulator for the setup of Breen et al. 2020 ("Newton vs the machine").

Three unit masses (G = 1) start at rest with the centre of mass at the origin:
x1 = (1, 0), x2 inside Breen's sampling region and x3 = -x1 - x2. Positions are
reported on the grid t = k/256.

`simulate` integrates many initial conditions at once with the Dormand-Prince
8(5,3) pair (DOP853) and its 7th-order dense output. Every simulation keeps its
own adaptive step size; all arithmetic is numpy array operations over the set of
still-running simulations, so the Python overhead of a step is shared by all of
them. Steps are taken in a fictitious time s with dt/ds = 1 / (sum of 1/r_ij)
(a Sundman time transformation): close encounters, where most steps went, are
stretched out, and a run needs 37 % fewer steps (median 584 against 910 to
t = 3.9, 99th percentile 5,818 against 9,845). In numpy the saving does not
show in wall time: a step now carries the clock as a 13th variable and finds
the output times inside it by Newton's method on the interpolated clock.

The state is the three pair separations d12, d13, d23 and their velocities,
not the body positions. In body coordinates (of order 1) a pair at distance r
keeps only 16 + log10(r) digits of its separation, and the rounding of every
step near a close encounter is amplified by the chaos that follows: runs then
stop converging as the tolerance is tightened. Each separation stored as its own
variable keeps full relative precision however close the pair gets, so the
error shrinks with the tolerance again; the redundancy (d12 - d13 + d23 = 0)
costs 12 state rows instead of 8. Positions follow from the separations with the
centre of mass at the origin.

Convergence is judged like Breen's Brutus runs, by integrating every initial
condition twice: the returned run at `rtol` (1e-13 up to t = 4, 1e-14 beyond:
errors grow exponentially through the chaotic phases) and a check run at
`10 * rtol`.
Their difference estimates the error of the looser run, so it bounds the error
of the returned, tighter one. A run is kept when the largest body-position
difference over the whole run is at most 1e-4 (`DEFAULT_MAX_DIVERGENCE`): the
network's error is of order 1e-2, so label noise of 1e-4 is negligible for it,
while a bound near double precision would reject chaotic runs whose labels are
perfectly usable. The maximum, not a median or an average, because one bad close
encounter spoils everything after it. Breen's own criterion (the phase-space
distance between the two runs at the end below 0.1) is computed on the same
runs for comparison, and `independent_check` compares kept runs against scipy's
DOP853 at a far tighter tolerance.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

# scipy ships Hairer's DOP853 tableau (transcribed from dop853.f, Hairer, Norsett &
# Wanner, "Solving ODEs I", sec. II.10); reusing it avoids retyping ~150 constants
# and guarantees the vectorized integrator and the scipy reference share the method.
from scipy.integrate._ivp import dop853_coefficients as _dop853

GRID_STEP = 1.0 / 256
T_MAX_DEFAULT = 3.9
T_MAX_LIMIT = 10.0
X1 = np.array([1.0, 0.0])

# Errors grow exponentially through the chaotic phases, so the longer horizon needs a
# tighter tolerance to end within the bound (see `default_rtol`).
DEFAULT_RTOL = 1e-13
LONG_HORIZON_RTOL = 1e-14
LONG_HORIZON = 4.0
DEFAULT_CHECK_RTOL_FACTOR = 10.0
DEFAULT_MAX_DIVERGENCE = 1e-4
DEFAULT_MAX_ENERGY_ERROR = 1e-5
# A few units in the last place of t ~ 1: close encounters legitimately need steps far
# below 1e-11 in the separation state; only a collision drives the step lower.
DEFAULT_MIN_STEP = 1e-14
MAX_STEPS_PER_TIME_UNIT = 2000  # at rtol STEP_BUDGET_RTOL; DOP853's step count grows as rtol^(-1/8)
STEP_BUDGET_RTOL = 1e-12
BREEN_MAX_PHASE_DISTANCE = 0.1
REFERENCE_RTOL = 3e-14  # scipy raises any rtol below 100 machine epsilons (2.2e-14)

_N_STAGES = _dop853.N_STAGES  # 12; row 12 of the tableau is f at the new point (FSAL)
_N_STAGES_EXTENDED = _dop853.N_STAGES_EXTENDED  # 16: three more stages feed the interpolant
_A = _dop853.A
_B = _dop853.B
_ERR = np.stack([_dop853.E5, _dop853.E3])  # (2, 13): 5th- and 3rd-order error weights
_D = _dop853.D  # (4, 16): weights of the 4 highest interpolant terms

# Step-size controller of Hairer's DOP853 (and scipy): the error estimate is O(h^8).
_SAFETY = 0.9
_MIN_FACTOR = 0.2
_MAX_FACTOR = 10.0
_ERROR_EXPONENT = -1.0 / 8.0

# State rows: the separations d12 = x2 - x1, d13 = x3 - x1, d23 = x3 - x2 (x, y each),
# then their time derivatives, then the physical time t (the integration runs in the
# fictitious time s of `_derivative`). _ACCEL maps the scaled separations
# s_ij = d_ij / r_ij^3 to the separations' accelerations (d_ij'' = a_j - a_i with
# a_i = sum_k s_ik).
_N_PHASE = 12
_N_STATE = 13
_TIME = 12
_ACCEL = np.kron(np.array([[-2.0, -1.0, 1.0], [-1.0, -2.0, -1.0], [1.0, -1.0, -2.0]]), np.eye(2))
# Positions of bodies 1 and 2 from the separations, the centre of mass at the origin.
_POSITIONS = np.kron(np.array([[-1.0, -1.0, 0.0], [2.0, -1.0, 0.0]]), np.eye(2)) / 3.0
# Separations from the positions of bodies 1 and 2.
_SEPARATIONS = np.kron(np.array([[-1.0, 1.0], [-2.0, -1.0], [-1.0, -2.0]]), np.eye(2))
# Solving t(x) = grid time inside a step: from the linear guess, errors go ~1e-3, 1e-6, 1e-12, 1e-24.
_NEWTON_ITERATIONS = 3

_PROGRESS_EVERY = 64  # iterations between progress callbacks

ProgressCallback = Callable[[int, int], None]


class Status(enum.IntEnum):
    """Per-simulation outcome; anything but CONVERGED means the trajectory is discarded."""

    CONVERGED = 0
    STEP_TOO_SMALL = 1  # step size collapsed below the floor (collision or non-finite state)
    TOO_MANY_STEPS = 2
    ENERGY_DRIFT = 3
    SINGULAR_START = 4  # two bodies start at the same point
    DIVERGED = 5  # the check run at a looser tolerance disagrees


@dataclass(frozen=True)
class SimulationResult:
    """Trajectories on the output grid; failed simulations are NaN, never partial."""

    times: np.ndarray  # (T,)
    positions: np.ndarray  # (n, T, 3, 2)
    converged: np.ndarray  # (n,) bool
    energy_error: np.ndarray  # (n,) |E(t_end) - E0| / |E0| of the returned run
    steps: np.ndarray  # (n,) accepted steps of the returned run
    status: np.ndarray  # (n,) Status codes
    divergence: np.ndarray  # (n,) largest position difference to the check run over the run; NaN if one failed
    phase_distance: np.ndarray  # (n,) RMS phase-space distance to the check run at t_end; NaN if one failed
    x2: np.ndarray  # (n, 2) the initial conditions

    @property
    def breen_converged(self) -> np.ndarray:
        """Breen's criterion on the same twin runs: both finished, phase-space distance below 0.1."""
        return self.phase_distance < BREEN_MAX_PHASE_DISTANCE

    @property
    def dropped_x2(self) -> np.ndarray:
        """Initial conditions of the discarded runs (k, 2): where the simulator cannot label."""
        return self.x2[~self.converged]


def sample_initial_x2(n: int, seed: int) -> np.ndarray:
    """Draw x2 like Breen et al.: uniform on [-0.5, 0] x [0, 1], rejecting |x2| > 1.

    Candidates come in fixed-size chunks so the first m samples do not depend on n.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    accepted = [np.empty((0, 2))]
    count = 0
    while count < n:
        candidates = rng.uniform(low=(-0.5, 0.0), high=(0.0, 1.0), size=(1024, 2))
        inside = candidates[np.hypot(candidates[:, 0], candidates[:, 1]) <= 1.0]
        accepted.append(inside)
        count += len(inside)
    return np.concatenate(accepted)[:n]


class InvalidX2Error(ValueError):
    """An initial x2 the model is not defined on; `row` and `reason` let callers rephrase it."""

    def __init__(self, row: int, point: tuple[float, float], reason: str) -> None:
        super().__init__(f"x2 row {row} = ({point[0]}, {point[1]}) {reason}")
        self.row = row
        self.reason = reason


def validate_x2(x2: np.ndarray) -> None:
    """Reject initial conditions outside the region the model is defined on."""
    x2 = np.asarray(x2, dtype=float)
    if x2.ndim != 2 or x2.shape[1] != 2:
        raise ValueError(f"x2 must have shape (n, 2), got {x2.shape}")
    for i, (x, y) in enumerate(x2):
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidX2Error(i, (x, y), "is not finite")
        if not (-0.5 <= x <= 0.0 and 0.0 <= y <= 1.0 and math.hypot(x, y) <= 1.0):
            raise InvalidX2Error(i, (x, y), "is outside the region x in [-0.5, 0], y in [0, 1], |x2| <= 1")


def time_grid(t_max: float) -> np.ndarray:
    """Output times k/256 for k = 0..ceil(256 t_max).

    Rounding up keeps Breen's point counts: 3.9 gives 1000 points (the last at
    999/256 ~ 3.9023) and 10 gives 2561.
    """
    if not math.isfinite(t_max) or t_max <= 0.0 or t_max > T_MAX_LIMIT:
        raise ValueError(f"t_max must be in (0, {T_MAX_LIMIT:g}], got {t_max}")
    last = math.ceil(t_max / GRID_STEP - 1e-9)
    return np.arange(last + 1) * GRID_STEP


def energy(positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Total energy of unit masses with G = 1; arrays are (..., 3, 2)."""
    kinetic = 0.5 * np.sum(velocities**2, axis=(-2, -1))
    potential = np.zeros_like(kinetic)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        potential -= 1.0 / np.linalg.norm(positions[..., j, :] - positions[..., i, :], axis=-1)
    return kinetic + potential


def position_error(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Largest distance between matching bodies at each time: (..., T, 3, 2) -> (..., T)."""
    return np.max(np.linalg.norm(positions - reference, axis=-1), axis=-1)


def _derivative(y: np.ndarray, out: np.ndarray) -> None:
    """Write d/ds of the state y (13, m) into out (13, m), where dt/ds = 1 / U and U = sum 1 / r_ij.

    The time transformation (Sundman's, with the potential as in the logarithmic
    Hamiltonian) stretches close encounters: a pass at distance r takes time of order
    r^(3/2) but fictitious time of order r^(1/2). It cuts the steps of the typical run
    and of the slowest by more than a third (tests/benchmarks/bench_three_body_simulation.py).
    """
    d = y[:6]
    squares = d * d
    inv_r = np.sqrt(squares[0::2] + squares[1::2])
    np.divide(1.0, inv_r, out=inv_r)
    dt_ds = np.add.reduce(inv_r, axis=0)
    np.divide(1.0, dt_ds, out=dt_ds)
    inv_r *= inv_r * inv_r * dt_ds  # now 1 / r^3, times dt/ds
    scaled = np.repeat(inv_r, 2, axis=0)
    scaled *= d
    np.matmul(_ACCEL, scaled, out=out[6:12])
    np.multiply(y[6:12], dt_ds, out=out[:6])
    out[_TIME] = dt_ds


def _state_energy(y: np.ndarray) -> np.ndarray:
    """Energy of states (12, m): the kinetic energy of unit masses at rest on average is sum |v_ij|^2 / 6."""
    squares = y * y
    r = np.sqrt(squares[0:6:2] + squares[1:6:2])
    return np.sum(squares[6:], axis=0) / 6.0 - np.sum(1.0 / r, axis=0)


def _stage_state(y: np.ndarray, h: np.ndarray, k: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """y + h * sum_j weights[j] k[j] for stacked stages k (s, 12, m) and per-simulation h."""
    s = len(weights)
    dy = (weights @ k[:s].reshape(s, -1)).reshape(y.shape)
    dy *= h
    dy += y
    return dy


def _dense_coefficients(k: np.ndarray, y_old: np.ndarray, y_new: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Coefficients (7, 13, m) of DOP853's 7th-order interpolant over a step.

    k holds the 13 stages of the step in rows 0..12; rows 13..15 are filled here.
    """
    for s in range(_N_STAGES + 1, _N_STAGES_EXTENDED):
        _derivative(_stage_state(y_old, h, k, _A[s, :s]), k[s])
    delta = y_new - y_old
    f_old, f_new = k[0], k[_N_STAGES]
    coeffs = np.empty((7, *y_old.shape))
    coeffs[0] = delta
    coeffs[1] = h * f_old - delta
    coeffs[2] = 2.0 * delta - h * (f_new + f_old)
    coeffs[3:] = (_D @ k.reshape(_N_STAGES_EXTENDED, -1)).reshape(4, _N_STATE, -1) * h
    return coeffs


def _monomial_basis() -> np.ndarray:
    """(8, 7): column j holds the power coefficients of x^(j//2 + 1) (1 - x)^((j + 1)//2).

    These are the terms of scipy's nested form of the DOP853 interpolant
    (x (c0 + (1 - x) (c1 + x (c2 + ...))))); in powers of x one step's interpolant is a
    matrix product, and so is its derivative.
    """
    basis = np.zeros((8, 7))
    for j in range(7):
        term = np.polynomial.polynomial.polypow([0.0, 1.0], j // 2 + 1)
        term = np.polynomial.polynomial.polymul(term, np.polynomial.polynomial.polypow([1.0, -1.0], (j + 1) // 2))
        basis[: len(term), j] = term
    return basis


_MONOMIAL = _monomial_basis()
_POWERS = np.arange(8.0)[:, None]


def _basis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The interpolant's 7 terms (7, m) at step fractions x (m,), and their derivatives in x."""
    powers = x**_POWERS
    slopes = np.zeros_like(powers)
    slopes[1:] = _POWERS[1:] * powers[:-1]
    return _MONOMIAL.T @ powers, _MONOMIAL.T @ slopes


def _fractions_at_times(coeffs_t: np.ndarray, t_old: np.ndarray, t_new: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Step fractions x (m,) where the interpolated physical time equals targets (m,); coeffs_t is (7, m).

    t grows monotonically over a step, so Newton's method from the linear guess converges at once.
    """
    x = (targets - t_old) / (t_new - t_old)
    for _ in range(_NEWTON_ITERATIONS):
        terms, slopes = _basis(x)
        residual = np.einsum("jm,jm->m", coeffs_t, terms) + t_old - targets
        x = np.clip(x - residual / np.einsum("jm,jm->m", coeffs_t, slopes), 0.0, 1.0)
    return x


def _with_body_3(reduced: np.ndarray) -> np.ndarray:
    """(..., 2, 2) positions of bodies 1 and 2 -> (..., 3, 2) with x3 = -x1 - x2."""
    return np.concatenate([reduced, -reduced[..., :1, :] - reduced[..., 1:, :]], axis=-2)


@dataclass(frozen=True)
class _Limits:
    """Thresholds that mark a simulation as failed."""

    max_steps: int
    min_step: float


def _initial_state(x2: np.ndarray) -> np.ndarray:
    """States (13, n) at t = 0: separations from x1 = (1, 0) and x2, at rest."""
    y = np.zeros((_N_STATE, len(x2)))
    y[:6] = _SEPARATIONS @ np.concatenate([np.tile(X1[:, None], (1, len(x2))), x2.T])
    return y


def _attempt_steps(
    y: np.ndarray,
    f: np.ndarray,
    h: np.ndarray,
    rtol: np.ndarray,
    atol: np.ndarray,
    next_time: np.ndarray,
    stages: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One DOP853 step of size h from states y (13, b) with derivatives f, using the flat buffer stages (reused).

    Returns the new states, their derivatives, the error norms, which steps are accepted
    (within tolerance, finite), the accepted steps that reach next_time (columns) and their
    interpolants' coefficients (7, 13, d).
    """
    b = y.shape[1]
    k = stages[: _N_STAGES_EXTENDED * _N_STATE * b].reshape(_N_STAGES_EXTENDED, _N_STATE, b)
    k[0] = f
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for s in range(1, _N_STAGES):
            _derivative(_stage_state(y, h, k, _A[s, :s]), k[s])
        y_new = _stage_state(y, h, k, _B)
        _derivative(y_new, k[_N_STAGES])
        scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
        err = (_ERR @ k[: _N_STAGES + 1].reshape(_N_STAGES + 1, -1)).reshape(2, _N_STATE, b) / scale
        err5, err3 = np.einsum("ijk,ijk->ik", err, err)
        denom = err5 + 0.01 * err3
        err_norm = np.where(denom > 0, h * err5 / np.sqrt(_N_STATE * denom), 0.0)
    accept = (err_norm < 1.0) & np.isfinite(y_new).all(axis=0)
    dense = np.flatnonzero(accept & (next_time <= y_new[_TIME]))
    if len(dense):
        coeffs = _dense_coefficients(k[:, :, dense], y[:, dense], y_new[:, dense], h[dense])
    else:
        coeffs = np.empty((7, _N_STATE, 0))
    return y_new, k[_N_STAGES].copy(), err_norm, accept, dense, coeffs


def _integrate(
    x2: np.ndarray,
    rtol: np.ndarray,
    atol: np.ndarray,
    times: np.ndarray,
    out: np.ndarray,
    partner: np.ndarray,
    limits: _Limits,
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate every row of x2 with its own tolerances, writing positions of x1, x2 into out.

    out is (N, T, 2, 2) with row 0 already set. A failing simulation also stops
    partner[i] (its twin at the other tolerance), which can then no longer converge.
    Steps are taken in the fictitious time s; output times are found inside each
    step by inverting the interpolated t(s). Returns per-simulation status,
    accepted steps and the phase-space state (12, N) at t_end (NaN where the
    simulation did not get there).
    """
    n, n_times = len(x2), len(times)
    status = np.full(n, Status.CONVERGED, dtype=np.uint8)
    steps = np.zeros(n, dtype=np.int64)
    final = np.full((_N_PHASE, n), np.nan)

    y = _initial_state(x2)
    f = np.empty_like(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        _derivative(y, f)
    singular = ~np.isfinite(f).all(axis=0)
    status[singular] = Status.SINGULAR_START

    # Per active simulation: global index, next step size (in s), next grid index, ...
    idx = np.flatnonzero(~singular)
    y, f, rtol, atol = y[:, idx], f[:, idx], rtol[idx], atol[idx]
    # A thousandth of the tightest pair's free-fall time; the controller adapts from there.
    h = 1e-3 * np.min(np.sum(y[:6].reshape(3, 2, -1) ** 2, axis=1), axis=0) ** 0.75 / f[_TIME]
    next_k = np.ones(len(idx), dtype=np.int64)
    attempts = np.zeros(len(idx), dtype=np.int64)
    accepted_steps = np.zeros(len(idx), dtype=np.int64)
    rejected_before = np.zeros(len(idx), dtype=bool)
    settled = n_times * int(singular.sum())
    stages = np.empty(_N_STAGES_EXTENDED * _N_STATE * len(idx))
    iteration = 0

    while len(idx):
        y_new, f_new, err_norm, accept, dense, coeffs = _attempt_steps(y, f, h, rtol, atol, times[next_k], stages)
        with np.errstate(divide="ignore"):
            factor = _SAFETY * err_norm**_ERROR_EXPONENT
        factor = np.where(
            accept,
            np.minimum(np.where(rejected_before, 1.0, _MAX_FACTOR), factor),
            np.fmax(_MIN_FACTOR, factor),
        )
        t_old, t_new = y[_TIME], y_new[_TIME]

        if len(dense):
            first = next_k[dense]
            count = np.searchsorted(times, t_new[dense], side="right") - first
            owner = np.repeat(np.arange(len(dense)), count)
            grid_k = first[owner] + np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
            x = _fractions_at_times(coeffs[:, _TIME, owner], t_old[dense][owner], t_new[dense][owner], times[grid_k])
            terms, _ = _basis(x)
            state = np.einsum("jrm,jm->rm", coeffs[:, :_N_PHASE, owner], terms) + y[:_N_PHASE, dense][:, owner]
            out[idx[dense][owner], grid_k] = (_POSITIONS @ state[:6]).T.reshape(-1, 2, 2)
            at_end = grid_k == n_times - 1
            final[:, idx[dense][owner][at_end]] = state[:, at_end]
            next_k[dense] += count

        np.copyto(y, y_new, where=accept)
        np.copyto(f, f_new, where=accept)
        h = h * factor
        rejected_before = ~accept
        attempts += 1
        accepted_steps += accept

        finished = next_k == n_times
        # The step floor is on physical time: below a few units in the last place of t, t stops advancing.
        failed = ~finished & ((h * f[_TIME] < limits.min_step) | (attempts >= limits.max_steps))
        done = finished | failed
        if failed.any():
            too_small = h[failed] * f[_TIME, failed] < limits.min_step
            status[idx[failed]] = np.where(too_small, Status.STEP_TOO_SMALL, Status.TOO_MANY_STEPS)
            orphaned = np.isin(idx, partner[idx[failed]]) & ~done
            status[idx[orphaned]] = status[partner[idx[orphaned]]]
            done |= orphaned
        if done.any():
            gone = idx[done]
            steps[gone] = accepted_steps[done]
            settled += n_times * len(gone)
            keep = ~done
            idx, y, f, h = idx[keep], y[:, keep], f[:, keep], h[keep]
            rtol, atol, next_k, attempts = rtol[keep], atol[keep], next_k[keep], attempts[keep]
            accepted_steps, rejected_before = accepted_steps[keep], rejected_before[keep]

        iteration += 1
        if progress is not None and iteration % _PROGRESS_EVERY == 0:
            progress(settled + int(next_k.sum()), n * n_times)

    return status, steps, final


def default_rtol(t_max: float) -> float:
    """The returned run's tolerance: tighter beyond t = 4, where Breen's longer horizon starts."""
    return DEFAULT_RTOL if t_max <= LONG_HORIZON else LONG_HORIZON_RTOL


def simulate(
    x2: np.ndarray,
    t_max: float = T_MAX_DEFAULT,
    rtol: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    atol: float | None = None,
    check_rtol_factor: float = DEFAULT_CHECK_RTOL_FACTOR,
    max_divergence: float = DEFAULT_MAX_DIVERGENCE,
    max_steps: int | None = None,
    min_step: float = DEFAULT_MIN_STEP,
    max_energy_error: float = DEFAULT_MAX_ENERGY_ERROR,
) -> SimulationResult:
    """Integrate all initial conditions x2 (n, 2) together.

    Each initial condition runs twice in one batch: at (rtol, atol), which gives
    the returned trajectory (rtol defaults to `default_rtol(t_max)`, atol to
    rtol), and at tolerances `check_rtol_factor` times looser.
    A simulation is converged only if both runs finish, the largest body-position
    difference between them over the whole run is at most `max_divergence` and
    the returned run's relative energy error at the end is at most
    `max_energy_error`. Either run fails when its step size drops below
    `min_step` or it attempts more than `max_steps` steps (default 2000 per unit
    of time at rtol 1e-12, scaled as rtol^(-1/8)). Failed simulations come back as NaN.
    `progress(done, total)` counts output points (run x grid time) settled so far.
    """
    x2 = np.asarray(x2, dtype=float)
    validate_x2(x2)
    times = time_grid(t_max)
    rtol = default_rtol(t_max) if rtol is None else rtol
    atol = rtol if atol is None else atol
    if max_steps is None:
        max_steps = math.ceil(MAX_STEPS_PER_TIME_UNIT * (STEP_BUDGET_RTOL / rtol) ** 0.125 * times[-1])
    n, n_times = len(x2), len(times)

    # Rows 0..n-1 are the returned runs, rows n..2n-1 their looser checks.
    reduced = np.full((2 * n, n_times, 2, 2), np.nan)
    reduced[:, 0, 0] = X1
    reduced[:, 0, 1] = np.concatenate([x2, x2])
    looseness = np.repeat([1.0, check_rtol_factor], n)
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    status, steps, final = _integrate(
        np.concatenate([x2, x2]),
        rtol * looseness,
        atol * looseness,
        times,
        reduced,
        partner,
        _Limits(max_steps, min_step),
        progress,
    )

    divergence = np.empty(n)
    for start in range(0, n, 1024):  # chunks bound the temporaries of the comparison
        stop = min(start + 1024, n)
        gap = position_error(_with_body_3(reduced[start:stop]), _with_body_3(reduced[n + start : n + stop]))
        divergence[start:stop] = np.max(gap, axis=1)  # NaN where either run stopped early
    phase_distance = _phase_distance(final[:, :n], final[:, n:])
    with np.errstate(divide="ignore", invalid="ignore"):
        e0 = _state_energy(_initial_state(x2)[:_N_PHASE])
        energy_error = np.abs(_state_energy(final[:, :n]) - e0) / np.abs(e0)

    status = np.where(status[:n] != Status.CONVERGED, status[:n], status[n:])
    status[(status == Status.CONVERGED) & ~(energy_error <= max_energy_error)] = Status.ENERGY_DRIFT
    status[(status == Status.CONVERGED) & ~(divergence <= max_divergence)] = Status.DIVERGED
    converged = status == Status.CONVERGED

    positions = _with_body_3(reduced[:n])
    del reduced
    positions[~converged] = np.nan
    if progress is not None:
        progress(2 * n * n_times, 2 * n * n_times)
    return SimulationResult(
        times=times,
        positions=positions,
        converged=converged,
        energy_error=energy_error,
        steps=steps[:n],
        status=status,
        divergence=divergence,
        phase_distance=phase_distance,
        x2=x2,
    )


def _phase_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root mean square over the 12 body coordinates (positions and velocities) of states (12, m).

    Boekholt & Portegies Zwart's phase-space distance, normalised by the number of
    bodies and coordinates, which Breen et al. require below 0.1 between two runs.
    """
    bodies = []
    for state in (a, b):
        x12, v12 = _POSITIONS @ state[:6], _POSITIONS @ state[6:]
        bodies.append(np.concatenate([x12, -x12[:2] - x12[2:], v12, -v12[:2] - v12[2:]]))
    return np.sqrt(np.mean((bodies[0] - bodies[1]) ** 2, axis=0))


def independent_check(result: SimulationResult, sample: np.ndarray, rtol: float = REFERENCE_RTOL) -> np.ndarray:
    """Largest position error over the run of kept runs `sample` against scipy DOP853 at rtol = atol.

    The reference shares the equations but none of the vectorized integrator's code.
    Up to t = 4 its tolerance is tighter than the returned run's (1e-13), so it
    confirms that the twin-run difference bounds the error of what is kept. Beyond,
    the returned run (1e-14) is tighter than scipy allows, so agreement there
    bounds the sum of both errors.
    """
    sample = np.asarray(sample, dtype=np.int64)
    if not result.converged[sample].all():
        raise ValueError("the independent check compares kept runs only")
    errors = np.empty(len(sample))
    for i, row in enumerate(sample):
        reference = reference_solution(result.x2[row], result.times[-1], rtol, rtol, separations=True)
        errors[i] = np.max(position_error(result.positions[row], reference))
    return errors


def _full_derivative(_t: float, y: np.ndarray) -> np.ndarray:
    """Right-hand side of the unreduced 12-dimensional system, for scipy."""
    x = y[:6].reshape(3, 2)
    d = x[None, :, :] - x[:, None, :]  # d[i, j] = x_j - x_i
    r2 = np.einsum("ijk,ijk->ij", d, d)
    np.fill_diagonal(r2, np.inf)
    accel = np.einsum("ijk,ij->ik", d, r2**-1.5)
    return np.concatenate([y[6:], accel.ravel()])


def _separation_derivative(_t: float, y: np.ndarray) -> np.ndarray:
    """Right-hand side of the separation state (12,), for scipy."""
    d = y[:6].reshape(3, 2)
    r2 = np.sum(d * d, axis=1)
    return np.concatenate([y[6:], _ACCEL @ (d / (r2 * np.sqrt(r2))[:, None]).ravel()])


def reference_solution(
    x2_row: np.ndarray,
    t_max: float,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    *,
    separations: bool = False,
) -> np.ndarray:
    """Positions (T, 3, 2) from one scipy DOP853 run; NaN where it stopped.

    By default it integrates the full 12-dimensional system in body coordinates,
    the textbook formulation; `separations=True` integrates the simulator's
    separation state instead, which stays accurate through close encounters.
    """
    x2_row = np.asarray(x2_row, dtype=float).reshape(1, 2)
    validate_x2(x2_row)
    times = time_grid(t_max)
    x0 = np.stack([X1, x2_row[0], -X1 - x2_row[0]])
    if separations:
        rhs = _separation_derivative
        y0 = np.concatenate([_SEPARATIONS @ x0[:2].ravel(), np.zeros(6)])
    else:
        rhs = _full_derivative
        y0 = np.concatenate([x0.ravel(), np.zeros(6)])
    solution = solve_ivp(rhs, (0.0, times[-1]), y0, method="DOP853", t_eval=times, rtol=rtol, atol=atol)
    positions = np.full((len(times), 3, 2), np.nan)
    reached = solution.y.shape[1]
    if separations:
        positions[:reached] = _with_body_3((_POSITIONS @ solution.y[:6]).T.reshape(reached, 2, 2))
    else:
        positions[:reached] = solution.y[:6].T.reshape(reached, 3, 2)
    return positions
