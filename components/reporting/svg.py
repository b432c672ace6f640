"""Small inline-SVG plots: reports stay single self-contained files the Kubeflow UI can show."""

from __future__ import annotations

import html

import numpy as np


def axis_range(*arrays: np.ndarray) -> tuple[float, float]:
    """Shared axis over both datasets, so out-of-range traffic is visibly out of range."""
    low = min(float(a.min()) for a in arrays)
    high = max(float(a.max()) for a in arrays)
    return (low - 0.5, high + 0.5) if low == high else (low, high)


WIDTH, HEIGHT, MARGIN = 360, 220, 40


def frame(
    title: str,
    x_label: str,
    x_range: tuple[float, float],
    y_label: str,
    y_range: tuple[float, float],
    body: str,
) -> str:
    """Frame, axis extremes and labels shared by every plot; no xmlns needed inline in HTML5."""
    left, bottom = MARGIN, HEIGHT - MARGIN
    right, top = WIDTH - 10, 25
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-size="10" font-family="sans-serif">'
        f'<title>{html.escape(title)}</title><rect width="100%" height="100%" fill="white"/>'
        f'<text x="{WIDTH / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(title)}</text>'
        f"{body}"
        f'<polyline points="{left},{top} {left},{bottom} {right},{bottom}" fill="none" stroke="#444"/>'
        f'<text x="{left}" y="{bottom + 12}" text-anchor="start">{x_range[0]:.4g}</text>'
        f'<text x="{right}" y="{bottom + 12}" text-anchor="end">{x_range[1]:.4g}</text>'
        f'<text x="{(left + right) / 2}" y="{bottom + 26}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text x="{left - 3}" y="{bottom}" text-anchor="end">{y_range[0]:.3g}</text>'
        f'<text x="{left - 3}" y="{top + 8}" text-anchor="end">{y_range[1]:.3g}</text>'
        f'<text x="10" y="{(top + bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 10 {(top + bottom) / 2})">{html.escape(y_label)}</text>'
        "</svg>"
    )


def to_pixels(values: np.ndarray, value_range: tuple[float, float], start: float, end: float) -> np.ndarray:
    low, high = value_range
    return start + (values - low) / (high - low) * (end - start)


def line_plot(title: str, x_label: str, y_label: str, lines: list[tuple[np.ndarray, np.ndarray, str, str]]) -> str:
    """Lines given as (xs, ys, colour, dash pattern or "") on shared, equal-extent axes."""
    x_range = axis_range(*(xs for xs, _, _, _ in lines))
    y_range = axis_range(*(ys for _, ys, _, _ in lines))
    body = []
    for xs, ys, color, dash in lines:
        px = to_pixels(xs, x_range, MARGIN, WIDTH - 10)
        py = to_pixels(ys, y_range, HEIGHT - MARGIN, 25)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px, py))
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.2"{dashes}/>')
    return frame(title, x_label, x_range, y_label, y_range, "".join(body))


def scatter_plot(
    title: str,
    x_label: str,
    y_label: str,
    groups: list[tuple[np.ndarray, np.ndarray, str, float]],
    ranges: tuple[tuple[float, float], tuple[float, float]],
    discs: tuple[np.ndarray, float, str] | None = None,
) -> str:
    """Points as (xs, ys, colour, dot radius in pixels), drawn in order over `discs`: (centres (k, 2),
    radius in data units, colour), the areas the points stand for (ellipses when the axes differ)."""
    x_range, y_range = ranges
    (left, right), (bottom, top) = (MARGIN, WIDTH - 10), (HEIGHT - MARGIN, 25)
    body = []
    if discs is not None:
        centres, radius, color = discs
        rx = radius / (x_range[1] - x_range[0]) * (right - left)
        ry = radius / (y_range[1] - y_range[0]) * (bottom - top)
        cx, cy = to_pixels(centres[:, 0], x_range, left, right), to_pixels(centres[:, 1], y_range, bottom, top)
        body += [
            f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{rx:.1f}" ry="{ry:.1f}" fill="{color}" fill-opacity="0.25"/>'
            for x, y in zip(cx, cy)
        ]
    for xs, ys, color, size in groups:
        px, py = to_pixels(xs, x_range, left, right), to_pixels(ys, y_range, bottom, top)
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size}" fill="{color}"/>' for x, y in zip(px, py)]
    return frame(title, x_label, x_range, y_label, y_range, "".join(body))
