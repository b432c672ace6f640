"""Publish a model version and put it into service, or leave the previous one serving."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from components.contract import ModelCard
from components.deploy.repository_client import DeployError, load_version
from components.registry import model_spec
from components.store.model_registry import MODEL_BUCKET, publish_model, serving_version, set_serving_version
from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

TARGETS = ("local", "kserve", "none")
DATASET_BUCKET = "datasets"


def deploy(
    store: ObjectStore,
    model_dir: Path,
    card: ModelCard,
    target: str,
    server_url: str,
    training_data: Path | None = None,
    canary_percent: int = 0,
) -> str:
    """Publish `card.model_name`, record it as serving, and have the target load it; on failure
    restore the record.

    The training data go to the store too (content-addressed), so that monitoring can later
    compare served traffic with exactly what the model learnt from.
    """
    name = card.model_name
    if target not in TARGETS:
        raise ValueError(f"unknown deploy target {target!r}: choose one of {', '.join(TARGETS)}")
    store.ensure_bucket(MODEL_BUCKET)
    if training_data is not None:
        digest = hashlib.sha256(training_data.read_bytes()).hexdigest()
        key = f"{name}/{digest}{training_data.suffix or '.npz'}"
        store.ensure_bucket(DATASET_BUCKET)
        if key not in store.list_keys(DATASET_BUCKET, f"{name}/"):
            store.put_file(DATASET_BUCKET, key, training_data)
        card = dataclasses.replace(card, training_data_uri=f"s3://{DATASET_BUCKET}/{key}")
    previous = serving_version(store, name)
    version = publish_model(store, model_dir, dataclasses.replace(card, replaced=previous))
    set_serving_version(store, name, version, replaced=previous)

    def restore_record() -> None:
        if previous:
            set_serving_version(store, name, previous, replaced=version)

    try:
        if target == "local":
            load_version(server_url, name, version)
        elif target == "kserve":
            _roll_out_on_kserve(name, version, canary_percent, restore_record)
    except Exception:
        restore_record()
        raise
    log.info("model %s version %s deployed to %s (replaced %s)", name, version, target, previous)
    return version


def _roll_out_on_kserve(name: str, version: str, canary_percent: int, restore_record: Callable[[], None]) -> None:
    """Create or replace the InferenceService; promote, or roll back and restore the record."""
    from kserve.utils.utils import get_default_target_namespace

    from components.deploy.kserve_cluster import (
        SERVICE_ACCOUNT,
        KServeInferenceServices,
        build_inference_service,
        default_resources,
        deploy_to_cluster,
        v1_smoke_test,
    )
    from components.images import image

    isvc = build_inference_service(
        name, get_default_target_namespace(), f"s3://{MODEL_BUCKET}/{name}", SERVICE_ACCOUNT,
        image("predictor"), canary_percent or None, default_resources(), model_version=version)
    outcome = deploy_to_cluster(KServeInferenceServices(), isvc, timeout=600.0,
                                smoke_test=v1_smoke_test(name, [list(row) for row in model_spec(name).smoke_rows]),
                                before_rollback=restore_record)
    if not outcome.serving_new:
        raise DeployError(f"{name} {version}: {outcome.action}: {outcome.detail}")
