"""Model versions in the object store, in the layout KServe's TensorFlow Serving runtime reads.

`s3://models/<name>/<version>/` holds a SavedModel (numeric version folders, as TF Serving
wants) and `model-card.json`. The card is written last and marks the version complete, so a
reader never sees a half-uploaded model: versions without a card do not exist for it.
`s3://models/<name>/serving.json` names the version in production (the deployment record).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path

from components.contract import ModelCard
from components.store.object_store import ObjectStore

MODEL_BUCKET = "models"
CARD_FILE = "model-card.json"
SERVING_FILE = "serving.json"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks: a training set can be larger than a pod's memory allows twice."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def directory_digest(path: Path) -> str:
    """A content hash of a model directory, so that publishing the same model twice is a no-op."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(file)))
    return digest.hexdigest()


def _version_prefixes(store: ObjectStore, name: str, bucket: str) -> set[str]:
    return {
        key.removeprefix(f"{name}/").rstrip("/")
        for key in store.list_keys(bucket, f"{name}/", recursive=False)
        if key.endswith("/") and key.removeprefix(f"{name}/").rstrip("/").isdigit()
    }


def complete_versions(store: ObjectStore, name: str, bucket: str = MODEL_BUCKET) -> list[str]:
    """Published versions, oldest first; an upload that never finished is not among them."""
    keys = set(store.list_keys(bucket, f"{name}/"))
    versions = [v for v in _version_prefixes(store, name, bucket) if f"{name}/{v}/{CARD_FILE}" in keys]
    return sorted(versions, key=int)


def read_card(store: ObjectStore, name: str, version: str, bucket: str = MODEL_BUCKET) -> ModelCard:
    return ModelCard.from_dict(json.loads(store.get_bytes(bucket, f"{name}/{version}/{CARD_FILE}")))


def _new_version(taken: set[str], now: dt.datetime) -> str:
    """A numeric, sortable, readable version: the UTC time of publishing."""
    candidate = int(now.strftime("%Y%m%d%H%M%S"))
    while str(candidate) in taken:
        candidate += 1
    return str(candidate)


def publish_model(
    store: ObjectStore,
    model_dir: Path,
    card: ModelCard,
    bucket: str = MODEL_BUCKET,
    now: dt.datetime | None = None,
) -> str:
    """Upload a model directory as a new version of `card.model_name` and return it (or the
    existing identical one)."""
    name = card.model_name
    if not (model_dir / "saved_model.pb").is_file():
        raise ValueError(f"{model_dir} is not a SavedModel directory (no saved_model.pb)")
    store.ensure_bucket(bucket)
    digest = directory_digest(model_dir)
    for version in complete_versions(store, name, bucket):
        if read_card(store, name, version, bucket).artifact_digest == digest:
            return version
    now = now or dt.datetime.now(dt.UTC)
    version = _new_version(_version_prefixes(store, name, bucket), now)
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        store.put_file(bucket, f"{name}/{version}/{file.relative_to(model_dir).as_posix()}", file)
    full_card = dataclasses.replace(
        card,
        version=version,
        artifact_digest=digest,
        published_at=now.isoformat(timespec="seconds"),
        storage_uri=f"s3://{bucket}/{name}/{version}",
    )
    store.put_bytes(
        bucket,
        f"{name}/{version}/{CARD_FILE}",
        json.dumps(full_card.to_dict(), indent=2).encode(),
        content_type="application/json",
    )
    return version


def download_model(store: ObjectStore, name: str, version: str, dest: Path, bucket: str = MODEL_BUCKET) -> Path:
    """Fetch a complete version into dest/<version>, via a temporary folder renamed at the end."""
    prefix = f"{name}/{version}/"
    keys = store.list_keys(bucket, prefix)
    if f"{prefix}{CARD_FILE}" not in keys:
        raise LookupError(f"model {name} has no complete version {version} in s3://{bucket}")
    target = dest / version
    if (target / CARD_FILE).is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=dest))
    for key in keys:
        path = staging / key.removeprefix(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        store.download_file(bucket, key, path)
    staging.rename(target)
    return target


def set_serving_version(
    store: ObjectStore, name: str, version: str, bucket: str = MODEL_BUCKET, replaced: str | None = None
) -> None:
    if version not in complete_versions(store, name, bucket):
        raise LookupError(f"cannot serve {name} version {version}: not a complete published version")
    record = {
        "version": version,
        "replaced": replaced,
        "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.put_bytes(bucket, f"{name}/{SERVING_FILE}", json.dumps(record).encode(), content_type="application/json")


def serving_version(store: ObjectStore, name: str, bucket: str = MODEL_BUCKET) -> str | None:
    """The version in production, or None before the first deployment."""
    raw = store.get_bytes_or_none(bucket, f"{name}/{SERVING_FILE}")
    return json.loads(raw)["version"] if raw else None
