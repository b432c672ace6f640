"""Publish a model version and put it into service, or leave the previous one serving."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from components.contract import ModelCard
from components.deploy.repository_client import DeployError, load_version
from components.registry import model_spec
from components.store.model_registry import (
    MODEL_BUCKET,
    file_sha256,
    publish_model,
    serving_version,
    set_serving_version,
)
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
    """Publish `card.model_name` and put it into service; the serving record names what serves.

    `local`: record the version, then have the model server load it (the record is restored if it
    cannot). `kserve`: roll out an InferenceService that pins the version, and write the record
    only once it serves; after a rollback the record names the version the restored spec pins.

    The training data go to the store too (content-addressed), so that monitoring can later
    compare served traffic with exactly what the model learnt from.
    """
    name = card.model_name
    if target not in TARGETS:
        raise ValueError(f"unknown deploy target {target!r}: choose one of {', '.join(TARGETS)}")
    store.ensure_bucket(MODEL_BUCKET)
    if training_data is not None:
        digest = file_sha256(training_data)
        key = f"{name}/{digest}{training_data.suffix or '.npz'}"
        store.ensure_bucket(DATASET_BUCKET)
        if key not in store.list_keys(DATASET_BUCKET, f"{name}/"):
            store.put_file(DATASET_BUCKET, key, training_data)
        card = dataclasses.replace(card, training_data_uri=f"s3://{DATASET_BUCKET}/{key}")
    previous = serving_version(store, name)
    version = publish_model(store, model_dir, dataclasses.replace(card, replaced=previous))
    if target == "kserve":
        # The InferenceService pins the version; the record follows the spec once it serves.
        restored = _roll_out_on_kserve(name, version, canary_percent)
        if restored is not None:
            if restored != serving_version(store, name):
                set_serving_version(store, name, restored, replaced=version)
            raise DeployError(f"{name} {version} rolled back to {restored}")
        set_serving_version(store, name, version, replaced=previous)
    else:
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


def _roll_out_on_kserve(name: str, version: str, canary_percent: int) -> str | None:
    """Create or replace the InferenceService serving `version`: None when it serves, the version
    the restored spec pins after a rollback; DeployError when a first deployment fails.

    The namespace is the run's own (a profile namespace); the smoke test calls the cluster-local
    address unless SMOKE_TEST_ADDRESS=external.
    """
    from kserve.utils.utils import get_default_target_namespace

    from components.deploy.kserve_cluster import (
        KServeInferenceServices,
        build_inference_service,
        deploy_to_cluster,
        smoke_test_address,
        v1_smoke_test,
    )
    from components.images import image

    isvc = build_inference_service(
        name, get_default_target_namespace(), version, image("predictor"), canary_percent=canary_percent or None
    )
    outcome = deploy_to_cluster(
        KServeInferenceServices(),
        isvc,
        timeout=600.0,
        smoke_test=v1_smoke_test(name, [list(row) for row in model_spec(name).smoke_rows]),
        address=smoke_test_address(),
    )
    if outcome.serving_new:
        return None
    if outcome.restored_version is None:
        raise DeployError(f"{name} {version}: {outcome.action}: {outcome.detail}")
    log.warning("%s %s: %s: %s", name, version, outcome.action, outcome.detail)
    return outcome.restored_version
