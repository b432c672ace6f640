"""What every training component does around its problem's `train`: progress lines and the card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components import saved_model
from components.contract import ModelCard

CARD_METADATA_KEY = "card"


def epoch_printer(epochs: int, label: str = "loss") -> Callable[[int, float], None]:
    """Print about ten progress lines over a run, whatever its length (the pod log is the progress bar)."""
    every = max(1, epochs // 10)

    def report(epoch: int, value: float) -> None:
        if epoch % every == 0 or epoch == epochs:
            print(f"epoch {epoch}/{epochs} {label} {value:.4g}", flush=True)

    return report


def save_trained(trained: Any, path: Path, card: ModelCard, metadata: dict[str, Any]) -> None:
    """Export the Keras model and record its card in the Model artifact's metadata."""
    saved_model.export(trained, path)
    metadata[CARD_METADATA_KEY] = card.to_dict()


def card_of(metadata: dict[str, Any]) -> ModelCard:
    """The card a training component recorded in a Model artifact's metadata."""
    if CARD_METADATA_KEY not in metadata:
        raise ValueError("the model artifact has no model card: was it made by a training component?")
    return ModelCard.from_dict(metadata[CARD_METADATA_KEY])
