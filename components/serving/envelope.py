"""The training envelope: the box of inputs a model has seen, recorded in its model card.

A request outside it is still answered (the caller may know better) but flagged, because a
network's answer there is extrapolation: the article's 1000000 + 4 = 1318969.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Envelope:
    columns: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def of(cls, columns: tuple[str, ...], inputs: np.ndarray) -> Envelope:
        return cls(columns, tuple(map(float, inputs.min(axis=0))), tuple(map(float, inputs.max(axis=0))))

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> Envelope | None:
        raw = card.get("envelope")
        return cls(tuple(raw["columns"]), tuple(raw["low"]), tuple(raw["high"])) if raw else None

    def as_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "low": list(self.low), "high": list(self.high)}

    def outside(self, inputs: np.ndarray) -> np.ndarray:
        """One flag per row: any input below its training minimum or above its maximum."""
        return ((inputs < np.asarray(self.low)) | (inputs > np.asarray(self.high))).any(axis=1)
