"""Champion vs challenger: never ship a model that is worse than the one serving."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components.store.model_registry import MODEL_BUCKET, download_model, serving_version
from components.store.object_store import ObjectStore

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GateDecision:
    deploy: bool
    reason: str
    challenger_score: float
    champion_score: float | None = None
    champion_version: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def decide(
    challenger_score: float,
    threshold: float,
    champion_score: float | None = None,
    champion_version: str | None = None,
    tolerance: float = 0.05,
) -> GateDecision:
    """Scores are errors (lower is better); the challenger may be `tolerance` (relative) worse."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    args = (challenger_score, champion_score, champion_version)
    if not np.isfinite(challenger_score) or challenger_score > threshold:
        return GateDecision(False, f"REFUSED: error {challenger_score:.4g} exceeds the threshold {threshold:g}", *args)
    if champion_score is None:
        return GateDecision(True, f"PASS: error {challenger_score:.4g} <= {threshold:g}; first deployment", *args)
    limit = champion_score * (1 + tolerance)
    if challenger_score <= limit:
        return GateDecision(
            True,
            f"PASS: error {challenger_score:.4g} <= {threshold:g} and no worse than "
            f"champion {champion_version} ({champion_score:.4g}, tolerance {tolerance:.0%})",
            *args,
        )
    return GateDecision(
        False,
        f"REFUSED: error {challenger_score:.4g} is worse than champion {champion_version} "
        f"({champion_score:.4g}, tolerance {tolerance:.0%})",
        *args,
    )


def load_champion(store: ObjectStore, name: str, loader: Callable[[Path], Predictor]) -> tuple[str, Predictor] | None:
    """The model in production, loaded for scoring on the challenger's data; None before the first.

    Its files go to a scratch folder that is gone on return (the loader holds the model in memory):
    under the local runner every evaluation would otherwise leave a model copy behind in /tmp."""
    store.ensure_bucket(MODEL_BUCKET)
    version = serving_version(store, name)
    if version is None:
        return None
    with tempfile.TemporaryDirectory(prefix=f"champion-{name}-") as scratch:
        return version, loader(download_model(store, name, version, Path(scratch)))
