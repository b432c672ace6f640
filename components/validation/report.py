"""Human-readable renderings of a DriftReport for the Kubeflow UI.

Markdown for KFP's Markdown viewer; HTML with inline SVG plots so the file stays
self-contained (the UI sandboxes it and the cluster may have no internet access).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from components.reporting.svg import HEIGHT, MARGIN, WIDTH, axis_range, frame, to_pixels

from .drift import Check, DriftReport, validate_inputs

REFERENCE_COLOR = "#1f77b4"
CURRENT_COLOR = "#ff7f0e"
HISTOGRAM_BINS = 40
SCATTER_POINTS = 500
"""Points per dataset in the scatter: enough to show structure, small enough for the page."""
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_<|"})


def render_markdown(
    report: DriftReport,
    reference: np.ndarray,
    current: np.ndarray,
    feature_names: Sequence[str],
    title: str = "Data drift report",
) -> str:
    """Verdict and reasons first, so a reader sees why before the full table."""
    ref, cur, names = _inputs(report, reference, current, feature_names)
    lines = [
        f"# {_md(title)}",
        "",
        f"**{_verdict(report)}**",
        "",
        _sizes(report),
        "",
        f"Error control: {_md(report.error_control)}.",
        "",
    ]
    lines += [f"Note: {_md(note)}" for note in report.notes] + ([""] if report.notes else [])
    lines += ["## Why", ""]
    lines += [f"- {_md(r)}" for r in report.reasons] or ["Every check passed."]
    lines += [
        "",
        "## Checks",
        "",
        "| Result | Check | Features | Value | Fails when | Reason |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    for c in report.checks:
        result = "**FAIL**" if c.votes and not c.passed else _result(c)
        features = _md(", ".join(c.features))
        cells = [result, c.name, features, f"{c.value:.4g}", _md(c.condition), _md(c.reason)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Features",
        "",
        "| Feature | Reference mean ± std | Reference [min, max] | Current mean ± std | Current [min, max] |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for j, name in enumerate(names):
        cells = [_md(name), *_summary(ref[:, j]), *_summary(cur[:, j])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_html(
    report: DriftReport,
    reference: np.ndarray,
    current: np.ndarray,
    feature_names: Sequence[str],
    title: str = "Data drift report",
) -> str:
    """The Markdown content plus one histogram per feature and a scatter of the first two."""
    ref, cur, names = _inputs(report, reference, current, feature_names)
    esc = html.escape
    reasons = "".join(f"<li>{esc(r)}</li>" for r in report.reasons) or "<li>Every check passed.</li>"
    rows = "".join(
        f'<tr class="{_row_class(c)}"><td>{_result(c)}</td>'
        f"<td>{esc(c.name)}</td><td>{esc(', '.join(c.features))}</td><td>{c.value:.4g}</td>"
        f"<td>{esc(c.condition)}</td><td>{esc(c.reason)}</td></tr>"
        for c in report.checks
    )
    plots = [_histogram_svg(name, ref[:, j], cur[:, j]) for j, name in enumerate(names)]
    if len(names) >= 2:
        plots.append(_scatter_svg(names[0], names[1], ref[:, :2], cur[:, :2]))
    legend = (
        f'<p><span style="color:{REFERENCE_COLOR}">&#9632; reference</span> '
        f'<span style="color:{CURRENT_COLOR}">&#9632; current</span></p>'
    )
    verdict_class = "fail" if report.drift_detected else "pass"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }}
tr.fail td:first-child, p.fail {{ color: #b00020; font-weight: bold; }}
tr.pass td:first-child, p.pass {{ color: #1b7f3a; font-weight: bold; }}
.plots svg {{ margin: 0.5em; border: 1px solid #eee; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p class="{verdict_class}">{esc(_verdict(report))}</p>
<p>{esc(_sizes(report))}</p>
<p>Error control: {esc(report.error_control)}.</p>
{"".join(f"<p>Note: {esc(note)}</p>" for note in report.notes)}
<h2>Why</h2><ul>{reasons}</ul>
<h2>Distributions</h2>{legend}<div class="plots">{"".join(plots)}</div>
<h2>Checks</h2>
<table><tr><th>Result</th><th>Check</th><th>Features</th><th>Value</th><th>Fails when</th><th>Reason</th></tr>
{rows}</table>
</body></html>
"""


def _inputs(
    report: DriftReport, reference: np.ndarray, current: np.ndarray, feature_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Guard against plotting data other than what the report describes."""
    ref, cur, names = validate_inputs(reference, current, feature_names)
    if names != report.feature_names:
        raise ValueError(f"feature_names {list(names)} differ from the report's {list(report.feature_names)}")
    if (ref.shape[0], cur.shape[0]) != (report.n_reference, report.n_current):
        raise ValueError(
            f"data has {ref.shape[0]} reference / {cur.shape[0]} current rows but the report was built "
            f"from {report.n_reference} / {report.n_current}"
        )
    return ref, cur, names


def _md(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def _verdict(report: DriftReport) -> str:
    failed = len(report.reasons)
    if failed:
        return f"Drift detected: {failed} of {len(report.tests)} tests failed."
    return f"No drift detected: all {len(report.tests)} tests passed."


def _sizes(report: DriftReport) -> str:
    def side(rows: int, units: int) -> str:
        return f"{rows:,} rows" if report.unit_name == "row" else f"{rows:,} rows from {units:,} {report.unit_name}s"

    return (
        f"Reference: {side(report.n_reference, report.n_reference_units)}. "
        f"Current: {side(report.n_current, report.n_current_units)}. "
        f"Features: {', '.join(report.feature_names)}."
    )


def _result(check: Check) -> str:
    """PASS/FAIL for tests; descriptive rows say only whether the effect is conventionally large."""
    if check.votes:
        return "PASS" if check.passed else "FAIL"
    return "small" if check.passed else "large"


def _row_class(check: Check) -> str:
    return ("pass" if check.passed else "fail") if check.votes else "note"


def _summary(values: np.ndarray) -> tuple[str, str]:
    return f"{values.mean():.4g} ± {values.std():.3g}", f"[{values.min():.6g}, {values.max():.6g}]"


def _histogram_svg(name: str, ref: np.ndarray, cur: np.ndarray) -> str:
    x_range = axis_range(ref, cur)
    edges = np.linspace(*x_range, HISTOGRAM_BINS + 1)
    shares = [np.histogram(v, bins=edges)[0] / v.size for v in (ref, cur)]
    y_range = (0.0, max(float(s.max()) for s in shares))
    x_px = to_pixels(edges, x_range, MARGIN, WIDTH - 10)
    bars = []
    for share, color in zip(shares, (REFERENCE_COLOR, CURRENT_COLOR)):
        y_px = to_pixels(share, y_range, HEIGHT - MARGIN, 25)
        rects = "".join(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{x1 - x0:.1f}" height="{HEIGHT - MARGIN - y:.1f}"/>'
            for x0, x1, y in zip(x_px[:-1], x_px[1:], y_px)
        )
        bars.append(f'<g fill="{color}" fill-opacity="0.5">{rects}</g>')
    return frame(name, name, x_range, "share of rows", y_range, "".join(bars))


def _scatter_svg(x_name: str, y_name: str, ref: np.ndarray, cur: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    samples = [d[rng.choice(d.shape[0], min(d.shape[0], SCATTER_POINTS), replace=False)] for d in (ref, cur)]
    x_range = axis_range(ref[:, 0], cur[:, 0])
    y_range = axis_range(ref[:, 1], cur[:, 1])
    groups = []
    for sample, color in zip(samples, (REFERENCE_COLOR, CURRENT_COLOR)):
        xs = to_pixels(sample[:, 0], x_range, MARGIN, WIDTH - 10)
        ys = to_pixels(sample[:, 1], y_range, HEIGHT - MARGIN, 25)
        dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.5"/>' for x, y in zip(xs, ys))
        groups.append(f'<g fill="{color}" fill-opacity="0.5">{dots}</g>')
    return frame(f"{y_name} vs {x_name}", x_name, x_range, y_name, y_range, "".join(groups))
