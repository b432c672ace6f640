"""Gather what monitoring compares: the served model's training inputs and its recent traffic."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np

from components.serving.traffic_log import read_traffic
from components.store.model_registry import MODEL_BUCKET, read_card, serving_version
from components.store.object_store import ObjectStore


@dataclass(frozen=True)
class MonitoringData:
    version: str
    training_inputs: np.ndarray
    traffic_inputs: np.ndarray


def collect(store: ObjectStore, model: str, window: dt.timedelta, now: dt.datetime | None = None) -> MonitoringData:
    """The served version's training inputs (from its model card) and its traffic within the window."""
    store.ensure_bucket(MODEL_BUCKET)
    version = serving_version(store, model)
    if version is None:
        raise LookupError(f"no {model} model is served: nothing to monitor")
    uri = read_card(store, model, version).training_data_uri
    if not uri:
        raise LookupError(f"{model} version {version} has no training_data_uri in its model card")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    with np.load(io.BytesIO(store.get_bytes(bucket, key))) as data:
        training = data["inputs"]
    since = (now or dt.datetime.now(dt.UTC)) - window
    return MonitoringData(version, training, read_traffic(store, model, version, since))


def covering_range(training: np.ndarray, traffic: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """A training range that covers both what the model learnt and what it was asked, plus a margin.

    Kept non-negative when everything seen is, so the recipe may still mix in small numbers.
    """
    seen = np.concatenate([training.reshape(-1), traffic.reshape(-1)])
    low, high = float(seen.min()), float(seen.max())
    span = high - low
    low = max(0.0, low - margin * span) if low >= 0 else low - margin * span
    return low, high + margin * span
