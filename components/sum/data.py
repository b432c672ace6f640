"""Data for the sum-of-two-numbers problem: the article's skewed recipe and representative ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = ("x", "y")
RECIPES = ("seed-equal-pairs", "uniform")


@dataclass(frozen=True)
class SumDataSpec:
    recipe: str = "uniform"
    size: int = 20_000
    low: float = 0.0
    high: float = 10_000.0
    small_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        """Reject bad parameters before any work, naming the parameter."""
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}: choose one of {', '.join(RECIPES)}")
        if self.recipe == "uniform":
            if self.size <= 0:
                raise ValueError(f"size must be positive, got {self.size}")
            if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.low >= self.high:
                raise ValueError(f"range must have low < high, got low={self.low}, high={self.high}")
            if not 0.0 <= self.small_fraction <= 1.0:
                raise ValueError(f"small_fraction must be in [0, 1], got {self.small_fraction}")
            if self.small_fraction > 0 and self.low < 0:
                raise ValueError("small_fraction needs low >= 0 (small magnitudes of a range that includes 0)")


def generate(spec: SumDataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Return (inputs [n, 2], targets [n]).

    `seed-equal-pairs` is exactly the article's training data: [1, 1] and [i, i] for odd i in
    3..9999. Its size and range are fixed by the article, so size/low/high do not apply.

    `uniform` draws independent pairs over [low, high]. A uniform draw almost never yields
    small numbers (4 + 5 is a 1-in-a-million corner of [0, 10000]^2), so a `small_fraction`
    of the pairs get magnitudes spread evenly over seven decades below `high` instead.
    """
    spec.validate()
    if spec.recipe == "seed-equal-pairs":
        values = np.concatenate([[1.0], np.arange(3, 10_000, 2, dtype=np.float64)])
        inputs = np.stack([values, values], axis=1)
    else:
        rng = np.random.default_rng(spec.seed)
        inputs = rng.uniform(spec.low, spec.high, size=(spec.size, 2))
        small = int(round(spec.size * spec.small_fraction))
        if small:
            top = np.log10(spec.high)
            bottom = max(top - 7.0, np.log10(spec.low) if spec.low > 0 else -np.inf)
            inputs[:small] = 10.0 ** rng.uniform(bottom, top, size=(small, 2))
            inputs = rng.permutation(inputs)
    return inputs, inputs.sum(axis=1)


def summary(inputs: np.ndarray) -> dict[str, float]:
    """Per-feature statistics and the x-y correlation, the numbers that reveal the article's skew."""
    stats: dict[str, float] = {"rows": float(len(inputs))}
    for i, name in enumerate(FEATURES):
        column = inputs[:, i]
        stats.update(
            {
                f"{name}_min": float(column.min()),
                f"{name}_max": float(column.max()),
                f"{name}_mean": float(column.mean()),
                f"{name}_std": float(column.std()),
            }
        )
    stats["xy_correlation"] = float(np.corrcoef(inputs[:, 0], inputs[:, 1])[0, 1]) if len(inputs) > 1 else 0.0
    return stats


def save(path: Path, inputs: np.ndarray, targets: np.ndarray) -> None:
    """One .npz per dataset: inputs and targets travel together."""
    with path.open("wb") as f:
        np.savez(f, inputs=inputs, targets=targets)


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["inputs"], data["targets"]


def data_hash(inputs: np.ndarray, targets: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(inputs).tobytes() + np.ascontiguousarray(targets).tobytes()).hexdigest()
