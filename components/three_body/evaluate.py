"""Is the network accurate, and is it faster than the integrator it replaces? Measured on held-out runs."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from components.reporting.svg import line_plot
from components.three_body.dataset import TrajectoryRows
from components.three_body.simulate import energy, reference_solution

Predictor = Callable[[np.ndarray], np.ndarray]
TIME_WINDOWS = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 3.9), (3.9, 10.0))
BODY_COLORS = ("#1f77b4", "#d62728", "#2ca02c")


@dataclass(frozen=True)
class ThreeBodyEvaluation:
    mae: float
    mae_by_window: dict[str, float]
    simulation_mae_median: float
    simulation_mae_p90: float
    simulation_mae_max: float
    energy_error_median: float
    ann_seconds_batched: float
    ann_seconds_single: float
    integrator_seconds: float

    def metrics(self) -> dict[str, float]:
        values = {k: v for k, v in self.__dict__.items() if isinstance(v, float)}
        values.update({f"mae_t_{window}": mae for window, mae in self.mae_by_window.items()})
        values["speedup_single"] = self.integrator_seconds / self.ann_seconds_single
        values["speedup_batched"] = self.integrator_seconds / self.ann_seconds_batched
        return values


def _all_positions(x1_x2: np.ndarray) -> np.ndarray:
    """(..., 4) -> (..., 3, 2), with x3 from the centre of mass."""
    x1, x2 = x1_x2[..., 0:2], x1_x2[..., 2:4]
    return np.stack([x1, x2, -x1 - x2], axis=-2)


def relative_energy_error(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """|E(t) - E(0)| / |E(0)| of one predicted trajectory, velocities by finite differences.

    The bodies start at rest, so E(0) is the potential energy of the initial configuration.
    """
    velocities = np.gradient(positions, times, axis=0, edge_order=2)
    velocities[0] = 0.0
    energies = energy(positions, velocities)
    return np.abs(energies - energies[0]) / abs(energies[0])


def time_predictions(predict: Predictor, inputs: np.ndarray, repeats: int = 20) -> tuple[float, float]:
    """Seconds per prediction: in one batch of all rows, and one query at a time (median)."""
    started = time.perf_counter()
    predict(inputs)
    batched = (time.perf_counter() - started) / len(inputs)
    singles = []
    for row in inputs[:repeats]:
        started = time.perf_counter()
        predict(row[None, :])
        singles.append(time.perf_counter() - started)
    return batched, float(np.median(singles))


def time_integrator(x2: np.ndarray, t_max: float, repeats: int = 3) -> float:
    """Seconds for a per-simulation DOP853 (rtol 1e-11) to reach t_max: one integrator 'prediction'."""
    durations = []
    for row in x2[:repeats]:
        started = time.perf_counter()
        reference_solution(row, t_max, rtol=1e-11, atol=1e-11)
        durations.append(time.perf_counter() - started)
    return float(np.median(durations))


def evaluate(predict: Predictor, rows: TrajectoryRows, t_max: float, timing_repeats: int = 3) -> ThreeBodyEvaluation:
    if len(rows.inputs) == 0:
        raise ValueError("no held-out rows to evaluate")
    predicted = predict(rows.inputs)[:, :4]
    errors = np.abs(predicted - rows.targets).mean(axis=1)
    t = rows.inputs[:, 0]
    by_window = {
        f"{low:g}-{high:g}": float(errors[(t >= low) & (t < high)].mean())
        for low, high in TIME_WINDOWS
        if ((t >= low) & (t < high)).any()
    }
    simulation_errors, energy_errors = [], []
    for sim in np.unique(rows.simulation):
        mask = rows.simulation == sim
        simulation_errors.append(errors[mask].mean())
        energy_errors.append(np.median(relative_energy_error(t[mask], _all_positions(predicted[mask]))))
    per_simulation = np.asarray(simulation_errors)
    first_rows = np.unique(rows.simulation, return_index=True)[1]
    batched, single = time_predictions(predict, rows.inputs)
    return ThreeBodyEvaluation(
        mae=float(errors.mean()),
        mae_by_window=by_window,
        simulation_mae_median=float(np.median(per_simulation)),
        simulation_mae_p90=float(np.percentile(per_simulation, 90)),
        simulation_mae_max=float(per_simulation.max()),
        energy_error_median=float(np.median(energy_errors)),
        ann_seconds_batched=batched,
        ann_seconds_single=single,
        integrator_seconds=time_integrator(rows.inputs[first_rows, 1:], t_max, timing_repeats),
    )


def trajectory_plots(predict: Predictor, rows: TrajectoryRows, cases: int = 3) -> list[str]:
    """Simulated (solid) vs predicted (dashed) orbits of a few held-out simulations."""
    plots = []
    for sim in np.unique(rows.simulation)[:cases]:
        mask = rows.simulation == sim
        truth = _all_positions(rows.targets[mask])
        guess = _all_positions(predict(rows.inputs[mask])[:, :4])
        lines = []
        for body, color in enumerate(BODY_COLORS):
            lines.append((truth[:, body, 0], truth[:, body, 1], color, ""))
            lines.append((guess[:, body, 0], guess[:, body, 1], color, "4 3"))
        x2 = rows.inputs[mask][0, 1:]
        plots.append(line_plot(f"simulation {sim}: x2(0) = ({x2[0]:.3f}, {x2[1]:.3f})", "x", "y", lines))
    return plots


def report_html(evaluation: ThreeBodyEvaluation, decision: str, plots: list[str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in evaluation.metrics().items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Three-body model evaluation</title></head>"
        "<body style='font-family:sans-serif'><h1>Three-body model evaluation</h1>"
        f"<p><b>Decision:</b> {html.escape(decision)}</p>"
        "<h2>Held-out simulations</h2><table border='1' cellpadding='3'>"
        f"<tr><th>metric</th><th>value</th></tr>{rows}</table>"
        "<h2>Trajectories: simulated (solid) vs network (dashed); body 1 blue, 2 red, 3 green</h2>"
        f"{''.join(plots)}</body></html>"
    )
