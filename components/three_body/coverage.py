"""Where the training data are, and where they are not: the initial conditions the simulator dropped.

A run that does not converge gives no rows, so the training data have holes exactly where the
simulator is least reliable: around the collision of bodies 2 and 3 at x2 = (-0.5, 0), and at
scattered close encounters elsewhere. The data map shows them; the model card records them as
`Holes` (discs of `HOLE_RADIUS` around each dropped x2), and the model server flags queries
there as `out_of_envelope`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from components.contract import Holes
from components.reporting.svg import scatter_plot
from components.three_body.simulate import Status

HOLE_COLUMNS = ("x2x", "x2y")
# Measured to t = 3.9 with tests/benchmarks/bench_hole_radius.py (2,000 and 10,000 draws, 3,000
# fresh ones to score the flag). Convergence changes over about 0.01: a point 0.0005-0.002 from a
# dropped run is dropped too in 79-88 % of cases, 0.01 away in 54-64 %, against 0-3 % next to a
# kept run and 5 % overall. As a flag, discs of radius 0.01 around the dropped runs of 2,000 draws
# catch 61 % of fresh draws that fail and 1.4 % of those that converge; around 10,000 draws' (459
# dropped) 91 % and 4.6 %. It is the largest radius at which a flagged query is more likely than not
# one the simulator itself cannot label at both sizes (70 % and 51 %); 0.02 flags 5 % (12 %) of the
# well-covered plane and is right about fewer than half (48 %, 31 %). Not measured to t = 10.
HOLE_RADIUS = 0.01
HOLE_WHY = (
    "initial conditions (x2x, x2y) whose simulation did not converge; a query within the radius of one is "
    "flagged: there a simulation fails more often than not (measured to t = 3.9)"
)
STATUS_COLORS = {
    Status.STEP_TOO_SMALL: "#d62728",
    Status.TOO_MANY_STEPS: "#ff7f0e",
    Status.ENERGY_DRIFT: "#9467bd",
    Status.SINGULAR_START: "#000000",
    Status.DIVERGED: "#e377c2",
}


@dataclass(frozen=True)
class Dropped:
    """Initial conditions that gave no training rows, and why (`Status` codes)."""

    x2: np.ndarray  # (k, 2)
    status: np.ndarray  # (k,)

    def counts(self) -> dict[str, int]:
        """Dropped runs by reason, every reason named (0 when none)."""
        return {status.name.lower(): int((self.status == status).sum()) for status in STATUS_COLORS}


def holes(dropped: Dropped, radius: float = HOLE_RADIUS) -> Holes:
    """The card's description of where the training data do not reach (no centres: no holes)."""
    return Holes.around(HOLE_COLUMNS, dropped.x2, radius, HOLE_WHY)


def map_html(training_x2: np.ndarray, validation_x2: np.ndarray, dropped: Dropped, radius: float = HOLE_RADIUS) -> str:
    """An HTML page: kept (training, held-out) and dropped initial conditions in the (x2x, x2y) plane.

    x2y runs across and x2x up: Breen's box is twice as long in y, as is the plot, so both axes
    share one scale and the holes are drawn round.
    """
    groups = [
        (training_x2[:, 1], training_x2[:, 0], "#9ecae1", 1.0),
        (validation_x2[:, 1], validation_x2[:, 0], "#1f77b4", 1.5),
    ]
    groups += [
        (dropped.x2[dropped.status == s, 1], dropped.x2[dropped.status == s, 0], color, 2.0)
        for s, color in STATUS_COLORS.items()
    ]
    plot = scatter_plot(
        "initial conditions: kept and dropped",
        "x2y",
        "x2x",
        groups,
        ((0.0, 1.0), (-0.5, 0.0)),
        discs=(dropped.x2[:, ::-1], radius, "#d62728"),
    )
    simulations = len(training_x2) + len(validation_x2) + len(dropped.x2)
    legend = [
        ("#9ecae1", f"training: {len(training_x2)}"),
        ("#1f77b4", f"held out: {len(validation_x2)}"),
        *((STATUS_COLORS[Status[name.upper()]], f"dropped, {name}: {n}") for name, n in dropped.counts().items() if n),
    ]
    items = "".join(f"<li><span style='color:{c}'>&#9679;</span> {html.escape(text)}</li>" for c, text in legend)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Three-body data map</title></head>"
        "<body style='font-family:sans-serif'><h1>Where the training data are: kept and dropped initial conditions</h1>"
        f"<p>{len(dropped.x2)} of {simulations} simulations did not converge and give no rows. "
        f"The shaded discs (radius {radius:g} in x2) are the holes recorded in the model card: the served model "
        "flags a query whose x2 lies in one as <code>out_of_envelope</code>.</p>"
        f"{plot}<ul>{items}</ul></body></html>"
    )
