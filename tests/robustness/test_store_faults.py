"""Store faults: a publish killed mid-upload leaves nothing a server would load, a store that goes
down mid-publish is waited for, wrong credentials fail fast, and publishing twice stores once.

(components/store/tests covers the client-level cases: a wrong secret and a missing bucket on
one write, an unreachable store, the store down during one write, an upload without its card.)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from components.contract import ModelCard
from components.deploy.repository_client import served_version
from components.store import model_registry as registry
from components.store.object_store import ObjectStore, RetryPolicy, StoreConfig, StoreError
from tests.robustness.raw_http import send

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def fake_saved_model(root: Path, files: int = 6, size: int = 64 * 1024) -> Path:
    """Enough of a SavedModel for the registry: saved_model.pb and several variable shards."""
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(secrets.token_bytes(size))
    for i in range(files):
        (root / "variables" / f"variables.data-{i:05d}-of-{files:05d}").write_bytes(secrets.token_bytes(size))
    (root / "variables" / "variables.index").write_bytes(secrets.token_bytes(1024))
    return root


# A publish that reports each uploaded file and then dawdles, so the test can kill it mid-upload.
SLOW_PUBLISH = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from components.contract import ModelCard
    from components.store import model_registry
    from components.store.object_store import ObjectStore

    store = ObjectStore.from_env()
    real_put_file = store.put_file

    def put_file(bucket, key, path):
        real_put_file(bucket, key, path)
        print("uploaded", key, flush=True)
        time.sleep(0.5)

    store.put_file = put_file
    model_registry.publish_model(store, Path(sys.argv[2]), ModelCard(sys.argv[1], {}, None), bucket=sys.argv[3])
    print("published", flush=True)
""")


def test_a_publish_killed_mid_upload_leaves_nothing_a_server_would_load(
    model_server, deployed_sum, store, bucket, tmp_path
):
    model_dir = fake_saved_model(tmp_path / "model")
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_PUBLISH, "m", str(model_dir), bucket],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    uploaded = []
    try:
        for line in process.stdout:
            if line.startswith("uploaded "):
                uploaded.append(line.split()[1])
                if len(uploaded) == 2:
                    process.send_signal(signal.SIGKILL)  # no cleanup, no card
                    break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert len(uploaded) == 2, "the publish did not start uploading"
    partial = uploaded[0].split("/")[1]
    assert sorted(store.list_keys(bucket, f"m/{partial}/")) == sorted(uploaded)

    # nothing treats it as a version
    assert registry.complete_versions(store, "m", bucket) == []
    with pytest.raises(LookupError, match="no complete version"):
        registry.download_model(store, "m", partial, tmp_path / "cache", bucket)
    with pytest.raises(LookupError, match="not a complete published version"):
        registry.set_serving_version(store, "m", partial, bucket)

    # publishing the same model again makes one complete version beside the invisible partial one
    first = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket)
    assert first != partial
    assert registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket) == first
    assert registry.complete_versions(store, "m", bucket) == [first]


def test_the_server_refuses_to_load_a_partial_upload_and_keeps_serving(model_server, deployed_sum, store):
    """Even with the serving record forced to name an upload without its card, a load call fails
    and the server goes on answering with the version it had."""
    serving_before = served_version(model_server, "sum")
    partial = "20991231235959"
    keys = [f"sum/{partial}/saved_model.pb", f"sum/{partial}/variables/variables.index"]
    record = store.get_bytes("models", "sum/serving.json")
    try:
        for key in keys:
            store.put_bytes("models", key, secrets.token_bytes(1024))
        store.put_bytes("models", "sum/serving.json", json.dumps({"version": partial}).encode())
        status, answer = send(model_server, "POST", "/v2/repository/models/sum/load", content_type=None)
        assert status == 503 and "no complete version" in answer["error"], answer
        assert served_version(model_server, "sum") == serving_before
        status, answer = send(model_server, "POST", "/v1/models/sum:predict", b'{"instances": [[1, 2]]}')
        assert status == 200 and answer["model_version"] == serving_before
    finally:
        store.put_bytes("models", "sum/serving.json", record)
        store.remove("models", keys)
    assert partial not in registry.complete_versions(store, "sum")


def test_a_store_that_goes_down_mid_publish_is_waited_for(model_server, deployed_sum, store_process, tmp_path):
    """The store stops after the first file of a publish and comes back 3 s later: the publish
    retries, completes, and the version is whole. The model server answers throughout."""
    store = ObjectStore(store_process.config, RetryPolicy(attempts=30, first_delay=0.5, max_delay=1, timeout=2))
    model_dir = fake_saved_model(tmp_path / "model")
    bucket = f"faults-{secrets.token_hex(4)}"
    store.ensure_bucket(bucket)
    real_put_file = store.put_file
    restart: list[threading.Timer] = []
    answers_while_down: list[int] = []

    def put_file(bucket_name: str, key: str, path: Path) -> None:
        real_put_file(bucket_name, key, path)
        if not restart:
            store_process.stop()
            status, _ = send(model_server, "POST", "/v1/models/sum:predict", b'{"instances": [[1, 2]]}')
            answers_while_down.append(status)
            restart.append(threading.Timer(3.0, store_process.start))
            restart[0].start()

    store.put_file = put_file
    started = time.monotonic()
    try:
        version = registry.publish_model(store, model_dir, ModelCard("m", {}, None), bucket)
    finally:
        for timer in restart:
            timer.join()
    assert restart, "the store was never stopped"
    assert time.monotonic() - started > 3, "the publish cannot have finished while the store was down"
    assert answers_while_down == [200]
    assert registry.complete_versions(store, "m", bucket) == [version]
    path = registry.download_model(store, "m", version, tmp_path / "cache", bucket)
    for file in model_dir.rglob("*"):  # whole: every file is there, byte for byte
        if file.is_file():
            assert (path / file.relative_to(model_dir)).read_bytes() == file.read_bytes()


def test_wrong_credentials_fail_a_publish_fast_and_say_which(store_config, bucket, tmp_path):
    model_dir = fake_saved_model(tmp_path / "model", files=1)
    for config, says in [
        (
            StoreConfig(store_config.endpoint, "no-such-access-key", store_config.secret_key),
            "InvalidAccessKeyId: unknown access key (MINIO_ACCESS_KEY)",
        ),
        (
            StoreConfig(store_config.endpoint, store_config.access_key, "not-the-secret"),
            "SignatureDoesNotMatch: wrong secret key (MINIO_SECRET_KEY)",
        ),
    ]:
        started = time.monotonic()
        with pytest.raises(StoreError, match=re.escape(f"{says} at {store_config.endpoint}")):
            registry.publish_model(ObjectStore(config), model_dir, ModelCard("m", {}, None), bucket)
        assert time.monotonic() - started < 5


def test_a_missing_bucket_fails_a_download_fast(store, tmp_path):
    started = time.monotonic()
    with pytest.raises(StoreError, match="NoSuchBucket: bucket does not exist"):
        registry.download_model(store, "sum", "1", tmp_path, bucket=f"missing-{secrets.token_hex(4)}")
    assert time.monotonic() - started < 5


def test_a_model_server_with_wrong_credentials_stops_at_once_with_a_clear_message(store_config, tmp_path):
    from conftest import free_port

    secret = f"wrong-{secrets.token_urlsafe(16)}"
    env = {
        **os.environ,
        "MINIO_ENDPOINT": store_config.endpoint,
        "MINIO_ACCESS_KEY": store_config.access_key,
        "MINIO_SECRET_KEY": secret,
    }
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.serving",
            "--http-port",
            str(free_port()),
            "--grpc-port",
            str(free_port()),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert time.monotonic() - started < 60
    assert "SignatureDoesNotMatch: wrong secret key (MINIO_SECRET_KEY)" in output, output[-2000:]
    assert secret not in output
