"""No credential values where they could leak: files git would commit, compiled pipelines, what the
model server writes (its log, its model cache), what the pipelines and models leave in the store.

The test session's store has random credentials (conftest.py): they must appear nowhere but in
the environment. Files git would commit are also scanned for anything that looks like a secret.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from components.store.model_registry import MODEL_BUCKET
from components.store.object_store import ObjectStore, StoreConfig

ROOT = Path(__file__).resolve().parents[2]

SECRET_PATTERNS = {
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    # NAME=value, NAME: value, "NAME": "value" with a value that looks generated: 12+ characters
    # mixing letters and digits. References ($VAR, ${VAR}, secretKeyRef) and REPLACE_ME pass.
    "credential assignment": re.compile(
        rb"(?:MINIO_SECRET_KEY|MINIO_ACCESS_KEY|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|secret_key|access_key)"
        rb"[\"']?\s*[=:]\s*[\"']?(?P<value>[A-Za-z0-9/+_.\-]{12,})"
    ),
}


def committable_files() -> list[Path]:
    """Tracked files, and untracked ones git does not ignore (what the next commit could hold)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def looks_generated(value: bytes) -> bool:
    return bool(re.search(rb"[A-Za-z]", value) and re.search(rb"[0-9]", value))


def secrets_in(data: bytes) -> list[str]:
    found = []
    for what, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(data):
            value = match.groupdict().get("value")
            if value is None or looks_generated(value):
                found.append(f"{what}: {match.group(0)[:60]!r}")
    return found


def local_credentials() -> list[str]:
    """The credentials `make run` made for this checkout, if any (.local/store.env, ignored by git)."""
    env_file = ROOT / ".local" / "store.env"
    if not env_file.is_file():
        return []
    values = []
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip().removeprefix("export ") in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY") and value.strip():
            values.append(value.strip().strip("'\""))
    return values


def test_the_scanner_finds_what_it_looks_for():
    # assembled here, so that this file does not hold what it looks for
    assert secrets_in(b"MINIO_SECRET_KEY" + b"=Zx9kQ2mV7pL4sT8w")
    assert secrets_in(b'"AWS_SECRET_ACCESS_KEY": "' + b"wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + b'EXAMPLEKEY"')
    assert secrets_in(b"id = AK" + b"IAIOSFODNN7EXAMPLE")
    assert secrets_in(b"-----BEGIN RSA " + b"PRIVATE KEY-----\nMIIE")
    for harmless in [
        b'MINIO_SECRET_KEY="$MINIO_SECRET_KEY"',
        b"AWS_ACCESS_KEY_ID: REPLACE_ME",
        b"secret_key=config.secret_key",
        b'"MINIO_SECRET_KEY": "very-secret"',
        b"key: AWS_SECRET_ACCESS_KEY",
    ]:
        assert not secrets_in(harmless), harmless


def test_files_git_would_commit_hold_no_secrets():
    files = committable_files()
    assert len(files) > 50
    known = [value.encode() for value in local_credentials()]
    found = []
    for path in files:
        data = path.read_bytes()
        found += [f"{path.relative_to(ROOT)}: {hit}" for hit in secrets_in(data)]
        found += [f"{path.relative_to(ROOT)}: a credential from .local/store.env" for value in known if value in data]
    assert not found, "\n".join(found)


@pytest.mark.integration
def test_compiled_pipelines_hold_no_credentials(store_config: StoreConfig):
    compiled = sorted((ROOT / "pipelines" / "compiled").glob("*.yaml"))
    assert compiled
    values = [store_config.access_key, store_config.secret_key, *local_credentials()]
    for path in compiled:
        data = path.read_bytes()
        assert not secrets_in(data), path
        assert not [v for v in values if v.encode() in data], f"{path.name} holds a credential value"


@pytest.mark.integration
def test_the_session_credentials_appear_in_no_log_cache_artifact_or_stored_object(
    model_server, deployed_sum, model_server_log: Path, store_config: StoreConfig, store: ObjectStore
):
    """After the other tests have sent good and bad requests, deployed models and stopped the store:
    the session's access key and secret key are nowhere in what the server and pipelines wrote."""
    values = [store_config.access_key.encode(), store_config.secret_key.encode()]
    places: list[Path] = [model_server_log]
    places += [p for p in model_server_log.parent.rglob("*") if p.is_file()]  # the model cache
    state = Path(os.environ["LOCAL_STATE_DIR"])  # pipeline root and local run state of this session
    places += [
        p
        for p in state.rglob("*")
        if p.is_file()
        and p.name != "store.env"  # credentials by design
        and "store-data" not in p.relative_to(state).parts
    ]  # the store's own database
    assert model_server_log.stat().st_size > 0
    leaks = [str(p) for p in places if any(v in p.read_bytes() for v in values)]
    stored = 0
    for bucket in ("models", "datasets", "inference-logs"):
        if not store.client.bucket_exists(bucket):
            continue
        for key in store.list_keys(bucket, ""):
            if key.endswith((".json", ".jsonl")):
                stored += 1
                if any(v in store.get_bytes(bucket, key) for v in values):
                    leaks.append(f"s3://{bucket}/{key}")
    assert stored > 0
    assert not leaks, leaks


@pytest.mark.integration
def test_model_cards_name_no_credentials(store: ObjectStore, deployed_sum):
    cards = [key for key in store.list_keys(MODEL_BUCKET, "") if key.endswith("model-card.json")]
    assert cards
    for key in cards:
        assert not secrets_in(store.get_bytes(MODEL_BUCKET, key)), key
