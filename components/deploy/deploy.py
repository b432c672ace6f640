"""Publish a model version and put it into service, or leave the previous one serving."""

from __future__ import annotations

import hashlib
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from components.deploy.local_server import load_version
from components.store.model_registry import MODEL_BUCKET, publish_model, serving_version, set_serving_version
from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

TARGETS = ("local", "none")
DATASET_BUCKET = "datasets"


def code_version() -> str:
    """Package version plus the commit the images or the Makefile record in CODE_VERSION."""
    package = metadata.version("fuseml-kfp-reference")
    commit = os.environ.get("CODE_VERSION", "")
    return f"{package}+{commit}" if commit else package


def deploy(
    store: ObjectStore,
    name: str,
    model_dir: Path,
    card: dict[str, Any],
    target: str,
    server_url: str,
    training_data: Path | None = None,
) -> str:
    """Publish, record as serving, and have the target load it; on failure restore the record.

    The training data go to the store too (content-addressed), so that monitoring can later
    compare served traffic with exactly what the model learnt from.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown deploy target {target!r}: choose one of {', '.join(TARGETS)}")
    store.ensure_bucket(MODEL_BUCKET)
    if training_data is not None:
        digest = hashlib.sha256(training_data.read_bytes()).hexdigest()
        key = f"{name}/{digest}{training_data.suffix or '.npz'}"
        store.ensure_bucket(DATASET_BUCKET)
        if key not in store.list_keys(DATASET_BUCKET, f"{name}/"):
            store.put_file(DATASET_BUCKET, key, training_data)
        card = {**card, "training_data_uri": f"s3://{DATASET_BUCKET}/{key}"}
    previous = serving_version(store, name)
    version = publish_model(store, name, model_dir, {**card, "replaced": previous, "code_version": code_version()})
    set_serving_version(store, name, version, replaced=previous)
    if target == "local":
        try:
            load_version(server_url, name, version)
        except Exception:
            if previous:
                set_serving_version(store, name, previous, replaced=version)
            raise
    log.info("model %s version %s deployed to %s (replaced %s)", name, version, target, previous)
    return version
