"""Live accuracy: is the served model right on the questions actually asked?

The traffic log holds every served query with the answer given. A sample of it, stratified
over request time and over cells of a plane of two input columns (the spec's `labelling.plane`),
is labelled with the model's own truth (`labelling.label`: arithmetic for sum, the simulator
for three-body) and the served answers are scored against it: MAE overall (each stratum
weighted by its share of the traffic, so the estimate is the traffic's MAE), by request-time
slice, by cell of the plane, and by window of the spec's time input (three-body's t). Rows
whose truth could not be computed (a simulation that did not converge) are counted, never
dropped silently. Cells scoring worse than the model card's held-out MAE by more than a
tolerance are the weak regions a retraining concentrates on.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

import numpy as np

from components.contract import Labelling, ModelSpec
from components.reporting.svg import HEIGHT, MARGIN, WIDTH, frame, to_pixels
from components.serving.traffic_log import read_records
from components.store.object_store import ObjectStore

Bounds = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class ServedQueries:
    """Logged rows of one served version: what was asked, what was answered, and when (epoch seconds)."""

    inputs: np.ndarray  # (n, inputs)
    outputs: np.ndarray  # (n, outputs)
    seconds: np.ndarray  # (n,)


def read_served(store: ObjectStore, model: str, version: str, since: dt.datetime | None = None) -> ServedQueries:
    """Inputs, served outputs and request times of one version's logged traffic (newer than `since`)."""
    inputs: list[list[float]] = []
    outputs: list[np.ndarray] = []
    seconds: list[float] = []
    for record in read_records(store, model, version, since):
        rows = len(record["inputs"])
        inputs.extend(record["inputs"])
        outputs.append(np.asarray(record["outputs"], dtype=np.float64).reshape(rows, -1))
        seconds.extend([dt.datetime.fromisoformat(record["time"]).timestamp()] * rows)
    if not inputs:
        return ServedQueries(np.empty((0, 0)), np.empty((0, 0)), np.empty(0))
    return ServedQueries(np.asarray(inputs, dtype=np.float64), np.concatenate(outputs), np.asarray(seconds))


def plane_bounds(labelling: Labelling, plane_inputs: np.ndarray) -> Bounds:
    """The error map's extent: the spec's (three-body: Breen's region) or the traffic's own."""
    if labelling.plane_bounds is not None:
        return labelling.plane_bounds
    low, high = plane_inputs.min(axis=0), plane_inputs.max(axis=0)
    high = np.where(high > low, high, low + 1.0)
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def column_indices(spec: ModelSpec, names: tuple[str, ...]) -> list[int]:
    return [spec.input_columns.index(name) for name in names]


def plane_cells(plane_inputs: np.ndarray, bounds: Bounds, cells: int) -> np.ndarray:
    """Cell index (ix * cells + iy) of every row on a cells x cells grid over the bounds."""
    index = []
    for axis in range(2):
        low, high = bounds[axis]
        position = (plane_inputs[:, axis] - low) / (high - low) * cells
        index.append(np.clip(np.floor(position), 0, cells - 1).astype(np.int64))
    return index[0] * cells + index[1]


def time_slices(seconds: np.ndarray, slices: int) -> np.ndarray:
    """Slice index of every row: the span of request times cut into equal slices."""
    if len(seconds) == 0:
        return np.zeros(0, dtype=np.int64)
    start, span = seconds.min(), seconds.max() - seconds.min()
    if span <= 0:
        return np.zeros(len(seconds), dtype=np.int64)
    return np.clip(np.floor((seconds - start) / span * slices), 0, slices - 1).astype(np.int64)


def stratified_sample(strata: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a sample of `size` spread as evenly as possible over the strata, and weights.

    Every non-empty stratum gets an equal share (a small one gives all its rows, the rest goes to
    the others), so a rarely asked region is still measured. The weight of a sampled row is its
    stratum's rows over its stratum's sampled rows: weighted means estimate the traffic's.
    """
    if size <= 0:
        raise ValueError(f"sample size must be positive, got {size}")
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(strata, return_counts=True)
    quota = np.zeros(len(labels), dtype=np.int64)
    left = min(size, len(strata))
    open_ = counts > 0
    while left > 0 and open_.any():
        share = max(1, left // int(open_.sum()))
        for i in np.flatnonzero(open_):
            take = min(share, counts[i] - quota[i], left)
            quota[i] += take
            left -= take
            if quota[i] == counts[i]:
                open_[i] = False
            if left == 0:
                break
    chosen, weights = [], []
    for label, count, k in zip(labels, counts, quota, strict=True):
        if k == 0:
            continue
        members = np.flatnonzero(strata == label)
        chosen.append(rng.choice(members, size=k, replace=False))
        weights.append(np.full(k, count / k))
    order = np.concatenate(chosen)
    return order, np.concatenate(weights)


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights)) if len(values) and np.sum(weights) > 0 else float("nan")


@dataclass(frozen=True)
class LiveAccuracy:
    """The served model scored against the truth on a labelled sample of its traffic."""

    mae: float
    sampled: int
    labelled: int
    unlabelled: int
    by_slice: dict[int, float]
    by_cell: dict[int, float]
    cell_rows: dict[int, int]
    by_time_window: dict[str, float] = field(default_factory=dict)
    row_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def metrics(self, reference_mae: float | None, cells: int) -> dict[str, float]:
        values = {
            "live_mae": self.mae,
            "sampled_rows": float(self.sampled),
            "labelled_rows": float(self.labelled),
            "unlabelled_rows": float(self.unlabelled),
        }
        if reference_mae is not None:
            values["heldout_mae"] = reference_mae
            values["live_over_heldout"] = self.mae / reference_mae if reference_mae > 0 else float("inf")
        values.update({f"live_mae_slice_{k}": v for k, v in self.by_slice.items()})
        values.update({f"live_mae_cell_{c // cells}_{c % cells}": v for c, v in self.by_cell.items()})
        values.update({f"live_mae_t_{w}": v for w, v in self.by_time_window.items()})
        return values


def row_errors(spec: ModelSpec, served: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean absolute error per row over the scored output columns (NaN where unlabelled)."""
    labelling = spec.labelling
    scored = labelling.scored_outputs if labelling and labelling.scored_outputs else spec.output_columns
    columns = [spec.output_columns.index(name) for name in scored]
    return np.abs(served[:, columns] - truth[:, columns]).mean(axis=1)


def live_accuracy(
    spec: ModelSpec,
    inputs: np.ndarray,
    served: np.ndarray,
    truth: np.ndarray,
    labelled: np.ndarray,
    weights: np.ndarray,
    slices: np.ndarray,
    cells: np.ndarray,
) -> LiveAccuracy:
    """Weighted MAE of the served answers overall, by request-time slice, by plane cell, by time window."""
    errors = row_errors(spec, served, truth)
    ok = labelled & np.isfinite(errors)
    e, w = errors[ok], weights[ok]
    by_slice = {int(s): _weighted_mean(e[slices[ok] == s], w[slices[ok] == s]) for s in np.unique(slices[ok])}
    by_cell = {int(c): _weighted_mean(e[cells[ok] == c], w[cells[ok] == c]) for c in np.unique(cells[ok])}
    cell_rows = {int(c): int(np.sum(cells[ok] == c)) for c in np.unique(cells[ok])}
    by_window: dict[str, float] = {}
    labelling = spec.labelling
    if labelling and labelling.time:
        t = inputs[ok, spec.input_columns.index(labelling.time)]
        for low, high in labelling.time_windows:
            inside = (t >= low) & (t < high)
            if inside.any():
                by_window[f"{low:g}-{high:g}"] = _weighted_mean(e[inside], w[inside])
    return LiveAccuracy(
        _weighted_mean(e, w),
        len(inputs),
        int(ok.sum()),
        int((~ok).sum()),
        by_slice,
        by_cell,
        cell_rows,
        by_window,
        errors,
    )


def exceeds(live_mae: float, reference_mae: float | None, tolerance: float) -> bool:
    """Live MAE worse than the held-out MAE by more than `tolerance` (relative)."""
    if reference_mae is None or not np.isfinite(live_mae):
        return False
    return live_mae > reference_mae * (1 + tolerance)


def weak_cells(accuracy: LiveAccuracy, reference_mae: float | None, tolerance: float, min_rows: int = 3) -> list[int]:
    """Cells with enough labelled rows whose live MAE exceeds the held-out MAE by more than the tolerance,
    worst first; with no held-out MAE, the cells above the live median."""
    scored = {c: mae for c, mae in accuracy.by_cell.items() if accuracy.cell_rows.get(c, 0) >= min_rows}
    if reference_mae is None:
        median = float(np.median(list(scored.values()))) if scored else 0.0
        weak = [c for c, mae in scored.items() if mae > median]
    else:
        weak = [c for c, mae in scored.items() if mae > reference_mae * (1 + tolerance)]
    return sorted(weak, key=lambda c: -scored[c])


def cell_box(cell: int, cells: int, bounds: Bounds) -> Bounds:
    """The (x range, y range) of a cell."""
    ix, iy = divmod(cell, cells)
    (x0, x1), (y0, y1) = bounds
    dx, dy = (x1 - x0) / cells, (y1 - y0) / cells
    return (x0 + ix * dx, x0 + (ix + 1) * dx), (y0 + iy * dy, y0 + (iy + 1) * dy)


def _color(value: float, top: float) -> str:
    """White (0) to red (top and beyond)."""
    if not np.isfinite(value):
        return "#dddddd"
    level = int(255 * (1 - min(1.0, value / top))) if top > 0 else 255
    return f"rgb(255,{level},{level})"


def error_map(
    title: str,
    labels: tuple[str, str],
    bounds: Bounds,
    cells: int,
    by_cell: dict[int, float],
    points: np.ndarray,
    errors: np.ndarray,
    reference_mae: float | None,
) -> str:
    """Cells shaded by live MAE (red at twice the held-out MAE, or at the worst cell), values written in,
    the sampled queries as dots (hollow: not labelled)."""
    finite = [v for v in by_cell.values() if np.isfinite(v)]
    top = 2 * reference_mae if reference_mae else (max(finite) if finite else 1.0)
    left, right, top_px, bottom = MARGIN, WIDTH - 10, 25, HEIGHT - MARGIN
    body = []
    for cell, mae in by_cell.items():
        (x0, x1), (y0, y1) = cell_box(cell, cells, bounds)
        px0, px1 = to_pixels(np.array([x0, x1]), bounds[0], left, right)
        py1, py0 = to_pixels(np.array([y0, y1]), bounds[1], bottom, top_px)
        body.append(
            f'<rect x="{px0:.1f}" y="{py0:.1f}" width="{px1 - px0:.1f}" height="{py1 - py0:.1f}" '
            f'fill="{_color(mae, top)}" stroke="#bbb"><title>MAE {mae:.4g}</title></rect>'
            f'<text x="{(px0 + px1) / 2:.1f}" y="{(py0 + py1) / 2 + 3:.1f}" text-anchor="middle" '
            f'font-size="8">{mae:.3f}</text>'
        )
    if len(points):
        px = to_pixels(points[:, 0], bounds[0], left, right)
        py = to_pixels(points[:, 1], bounds[1], bottom, top_px)
        for x, y, err in zip(px, py, errors, strict=True):
            fill = "none" if not np.isfinite(err) else "#333"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.3" fill="{fill}" stroke="#333" stroke-width="0.4"/>')
    return frame(title, labels[0], bounds[0], labels[1], bounds[1], "".join(body))


def summary_lines(
    model: str,
    accuracy: LiveAccuracy,
    reference_mae: float | None,
    retrain: bool,
    weak: list[int],
    cells: int,
    bounds: Bounds,
    labelling: Labelling,
    computations: int,
    seconds: float,
) -> list[str]:
    ref = f"{reference_mae:.4g}" if reference_mae is not None else "unknown (no mae in the model card)"
    lines = [
        f"live MAE: {accuracy.mae:.4g} (held-out MAE in the model card: {ref})",
        f"sample: {accuracy.sampled} rows, {accuracy.labelled} labelled, {accuracy.unlabelled} could not be "
        f"labelled (the truth did not converge or the query is outside the model's domain)",
        f"labelling: {computations} truth computations in {seconds:.2f} s",
    ]
    if weak:
        boxes = []
        for cell in weak:
            (x0, x1), (y0, y1) = cell_box(cell, cells, bounds)
            boxes.append(
                f"{labelling.plane[0]} [{x0:.3g}, {x1:.3g}) x {labelling.plane[1]} [{y0:.3g}, {y1:.3g}): "
                f"{accuracy.by_cell[cell]:.4g}"
            )
        lines.append("weak regions: " + "; ".join(boxes))
    lines.append(
        f"{model}: "
        + (
            "live MAE exceeds the held-out MAE beyond the tolerance: retraining needed"
            if retrain
            else "no retraining needed on accuracy"
        )
    )
    return lines


def report_markdown(lines: list[str], accuracy: LiveAccuracy, cells: int, bounds: Bounds, labelling: Labelling) -> str:
    parts = ["# Live accuracy", "", *[f"- {line}" for line in lines], ""]
    parts += ["## By region", "", "| region | live MAE | labelled rows |", "|---|---|---|"]
    for cell, mae in accuracy.by_cell.items():
        (x0, x1), (y0, y1) = cell_box(cell, cells, bounds)
        parts.append(
            f"| {labelling.plane[0]} [{x0:.3g}, {x1:.3g}) x {labelling.plane[1]} [{y0:.3g}, {y1:.3g}) "
            f"| {mae:.4g} | {accuracy.cell_rows.get(cell, 0)} |"
        )
    parts.append("")
    if accuracy.by_time_window:
        parts += ["## By time window", "", "| window | live MAE |", "|---|---|"]
        parts += [f"| {w} | {v:.4g} |" for w, v in accuracy.by_time_window.items()] + [""]
    parts += ["## By request-time slice", "", "| slice | live MAE |", "|---|---|"]
    parts += [f"| {s} | {v:.4g} |" for s, v in accuracy.by_slice.items()]
    return "\n".join(parts) + "\n"


def report_html(
    model: str, lines: list[str], accuracy: LiveAccuracy, cells: int, bounds: Bounds, labelling: Labelling, map_svg: str
) -> str:
    def table(title: str, header: str, rows: list[tuple[str, float, str]]) -> str:
        body = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td><td>{html.escape(n)}</td></tr>" for k, v, n in rows
        )
        return (
            f"<h2>{title}</h2><table border='1' cellpadding='3'><tr><th>{header}</th><th>live MAE</th>"
            f"<th>labelled rows</th></tr>{body}</table>"
        )

    cell_rows = []
    for cell, mae in accuracy.by_cell.items():
        (x0, x1), (y0, y1) = cell_box(cell, cells, bounds)
        cell_rows.append(
            (
                f"{labelling.plane[0]} [{x0:.3g}, {x1:.3g}) x {labelling.plane[1]} [{y0:.3g}, {y1:.3g})",
                mae,
                str(accuracy.cell_rows.get(cell, 0)),
            )
        )
    windows = [(w, v, "") for w, v in accuracy.by_time_window.items()]
    slices = [(f"slice {s}", v, "") for s, v in accuracy.by_slice.items()]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Live accuracy: {html.escape(model)}</title></head>"
        f"<body style='font-family:sans-serif'><h1>Live accuracy: {html.escape(model)}</h1><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        + f"</ul><h2>Error map</h2>{map_svg}"
        + table("By region", "region", cell_rows)
        + (table(f"By {html.escape(labelling.time or '')} window", "window", windows) if windows else "")
        + table("By request-time slice (the window cut in equal parts)", "slice", slices)
        + "</body></html>"
    )
