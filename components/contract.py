"""The model contract: what every learning problem tells the rest of the system, and its card.

A learning-problem package (`components/sum`, `components/three_body`) exports one `ModelSpec`.
Serving, deploying and monitoring know a model only through its spec (found by
`components.registry`) and through the `ModelCard` its training wrote, so adding a problem
touches one package and one pipeline module.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

Predictor = Callable[[np.ndarray], np.ndarray]
"""Rows `[n, len(input_columns)]` in, answers `[n, len(output_columns)]` (or `[n]`) out."""


def _no_parameters(params: Mapping[str, Any]) -> None:
    """A spec with nothing of its own to check."""


@dataclass(frozen=True)
class LabelResult:
    """The true answers for some input rows, as far as they could be computed.

    `outputs` is `[n, len(output_columns)]`, NaN in the rows whose truth could not be computed
    (`labelled` False: a simulation that did not converge); `computations` counts the truth
    computations made (simulations for three-body, 0 for arithmetic), the labelling's cost.
    """

    outputs: np.ndarray
    labelled: np.ndarray
    computations: int = 0

    def __post_init__(self) -> None:
        if self.outputs.ndim != 2 or len(self.outputs) != len(self.labelled):
            raise ValueError(f"outputs {self.outputs.shape} and labelled {self.labelled.shape} do not match")


@dataclass(frozen=True)
class Labelling:
    """How a model's true answer is computed for a logged query, and how to look at its errors.

    `label` maps input rows to a `LabelResult`. `plane` names the two input columns of the
    error map (and of the strata of the monitor's sample), `time` an input column whose values
    are reported in windows (`time_windows`), if any; `scored_outputs` the output columns the
    MAE averages over (all when empty), as the model card's held-out MAE does.
    """

    label: Callable[[np.ndarray], LabelResult]
    plane: tuple[str, str]
    plane_bounds: tuple[tuple[float, float], tuple[float, float]] | None = None
    time: str | None = None
    time_windows: tuple[tuple[float, float], ...] = ()
    scored_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """One learning problem's model, as serving, deploy, monitoring and the pipelines see it.

    `smoke_rows` are inputs any healthy version must answer (a deploy checks them after a
    rollout). `validate_params` refuses a pipeline's problem-specific parameters before any
    work starts; `presets` are named parameter sets of the problem's pipeline. `labelling`, when
    set, says how the true answer to any query is computed, so monitoring can measure the
    served model's accuracy on live traffic.
    """

    name: str
    input_name: str
    input_columns: tuple[str, ...]
    output_name: str
    output_columns: tuple[str, ...]
    load: Callable[[Path], Predictor]
    smoke_rows: tuple[tuple[float, ...], ...]
    validate_params: Callable[[Mapping[str, Any]], None] = _no_parameters
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    labelling: Labelling | None = None

    def __post_init__(self) -> None:
        width = len(self.input_columns)
        if any(len(row) != width for row in self.smoke_rows):
            raise ValueError(
                f"model {self.name}: every smoke row needs {width} values ({', '.join(self.input_columns)})"
            )
        if self.labelling is not None:
            named = [*self.labelling.plane, *([self.labelling.time] if self.labelling.time else [])]
            unknown = [c for c in named if c not in self.input_columns]
            unknown += [c for c in self.labelling.scored_outputs if c not in self.output_columns]
            if unknown:
                raise ValueError(f"model {self.name}: labelling names unknown column(s) {', '.join(unknown)}")

    def schema(self) -> dict[str, Any]:
        """The input and output tensors, as recorded in a model card."""
        return {
            "inputs": {"name": self.input_name, "columns": list(self.input_columns)},
            "outputs": {"name": self.output_name, "columns": list(self.output_columns)},
        }


@dataclass(frozen=True)
class Holes:
    """Places inside the envelope's box that the training data do not cover: discs around points.

    A data generator that fails for some inputs (a simulation that does not converge) leaves
    holes in an otherwise covered box; a query within `radius` (Euclidean, in `columns`) of a
    point in `centres` is as much an extrapolation as one outside the box. `why` says, for a
    reader of the card, how the points were found and the radius chosen.
    """

    columns: tuple[str, ...]
    centres: tuple[tuple[float, ...], ...]
    radius: float
    why: str = ""

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"holes need a positive radius, got {self.radius}")
        if any(len(centre) != len(self.columns) for centre in self.centres):
            raise ValueError(f"every hole centre needs {len(self.columns)} values ({', '.join(self.columns)})")

    @classmethod
    def around(cls, columns: tuple[str, ...], points: np.ndarray, radius: float, why: str = "") -> Holes:
        return cls(
            columns, tuple(tuple(map(float, p)) for p in np.asarray(points).reshape(-1, len(columns))), radius, why
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Holes:
        centres = tuple(tuple(map(float, centre)) for centre in raw["centres"])
        return cls(tuple(raw["columns"]), centres, float(raw["radius"]), str(raw.get("why", "")))

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "centres": [list(c) for c in self.centres],
            "radius": self.radius,
            "why": self.why,
        }

    def inside(self, points: np.ndarray) -> np.ndarray:
        """One flag per row of `points` (already in `columns`): within the radius of any centre."""
        points = np.asarray(points, dtype=np.float64)
        if not self.centres:
            return np.zeros(len(points), dtype=bool)
        centres = np.asarray(self.centres)
        flags = np.zeros(len(points), dtype=bool)
        for start in range(0, len(points), 4096):  # chunks bound the (rows x centres) distances
            gap = points[start : start + 4096, None, :] - centres[None, :, :]
            flags[start : start + 4096] = (np.einsum("ijk,ijk->ij", gap, gap) <= self.radius**2).any(axis=1)
        return flags


@dataclass(frozen=True)
class Envelope:
    """The box of inputs a model has seen in training, less the holes inside it the data do not cover.

    A request outside it is still answered (the caller may know better) but flagged, because a
    network's answer there is extrapolation: the article's 1000000 + 4 = 1318969.
    """

    columns: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    holes: Holes | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in (self.holes.columns if self.holes else ()) if c not in self.columns]
        if unknown:
            raise ValueError(f"holes name column(s) {', '.join(unknown)} the envelope does not have")

    @classmethod
    def of(cls, columns: tuple[str, ...], inputs: np.ndarray, holes: Holes | None = None) -> Envelope:
        return cls(columns, tuple(map(float, inputs.min(axis=0))), tuple(map(float, inputs.max(axis=0))), holes)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Envelope:
        holes = raw.get("holes")
        return cls(
            tuple(raw["columns"]),
            tuple(map(float, raw["low"])),
            tuple(map(float, raw["high"])),
            Holes.from_dict(holes) if holes else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "low": list(self.low),
            "high": list(self.high),
            "holes": self.holes.as_dict() if self.holes else None,
        }

    def outside(self, inputs: np.ndarray) -> np.ndarray:
        """One flag per row: any input below its training minimum or above its maximum, or in a hole."""
        flags = np.asarray(((inputs < np.asarray(self.low)) | (inputs > np.asarray(self.high))).any(axis=1))
        if self.holes is None:
            return flags
        picked = [self.columns.index(column) for column in self.holes.columns]
        return flags | self.holes.inside(np.asarray(inputs)[:, picked])


def code_version() -> str:
    """Package version plus the commit the images or the Makefile record in CODE_VERSION."""
    try:
        package = metadata.version("fuseml-kfp-reference")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        package = "0+unknown"
    commit = os.environ.get("CODE_VERSION", "")
    return f"{package}+{commit}" if commit else package


@dataclass(frozen=True)
class ModelCard:
    """What is known of one model version: schema, envelope, data, code, metrics and lineage.

    Training writes it (without metrics); the deploy step adds the evaluation's metrics and
    lineage and publishes it beside the SavedModel; publishing adds where and when. The
    server reads the envelope, monitoring reads `training_data_uri`.
    """

    model_name: str
    schema: dict[str, Any]
    envelope: Envelope | None
    data_sha256: str = ""
    data_recipe: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    code_version: str = field(default_factory=code_version)
    trained_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    metrics: dict[str, float] = field(default_factory=dict)
    training_data_uri: str = ""
    replaced: str | None = None
    # Set when a version is published (components.store.model_registry.publish_model):
    version: str = ""
    artifact_digest: str = ""
    published_at: str = ""
    storage_uri: str = ""

    @classmethod
    def for_training(
        cls,
        spec: ModelSpec,
        inputs: np.ndarray,
        training: Mapping[str, Any],
        data_sha256: str = "",
        data_recipe: str = "",
        holes: Holes | None = None,
    ) -> ModelCard:
        """The card of a model just trained on `inputs` (its envelope comes from them, less `holes`)."""
        envelope = Envelope.of(spec.input_columns, inputs, holes)
        return cls(spec.name, spec.schema(), envelope, data_sha256, data_recipe, dict(training))

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["envelope"] = self.envelope.as_dict() if self.envelope else None
        return raw

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelCard:
        """Read a card; keys this code does not know (a newer writer's) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in raw.items() if key in known}
        envelope = raw.get("envelope")
        values["envelope"] = Envelope.from_dict(envelope) if envelope else None
        return cls(**values)
