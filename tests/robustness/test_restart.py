"""Restart safety: a model server killed with SIGKILL under load, in the middle of loading a new
version, starts again on the version the serving record names, and answers nothing before that
version is loaded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from components.deploy.repository_client import served_version
from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model
from components.store.model_registry import publish_model, serving_version, set_serving_version
from components.store.object_store import ObjectStore
from tests.loadgen import run_load
from tests.robustness.raw_http import report

pytestmark = pytest.mark.integration

V1 = "/v1/models/sum:predict"
BODY = json.dumps({"instances": [[1, 2], [30, 40]]}).encode()


def ask(url: str) -> tuple[int, str | None]:
    """(status, version answered) for one V1 request; (0, None) when nothing answers."""
    request = urllib.request.Request(url + V1, data=BODY, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())["model_version"]
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def test_a_server_killed_under_load_restarts_on_the_recorded_version(
    new_model_server, deployed_sum, store_config, tmp_path, request
):
    store = ObjectStore(store_config)
    before = serving_version(store, "sum")
    server = new_model_server()
    server.start()
    assert served_version(server.url, "sum") == before
    new_dir = train_tiny_sum_model(tmp_path / "model", seed=11)  # before the load: training is not the test
    versions_seen: list[str] = []
    killed = threading.Event()

    def check(client: int, status: int, body: bytes, seconds: float) -> str | None:
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        versions_seen.append(json.loads(body)["model_version"])
        return None

    outcome: dict[str, object] = {}
    loader = threading.Thread(
        target=lambda: outcome.update(
            result=run_load(
                server.url, lambda c, n: (V1, BODY), clients=32, seconds=120, check=check, until=killed.is_set
            )
        )
    )
    loader.start()
    try:
        while len(versions_seen) < 500 and loader.is_alive():
            time.sleep(0.02)
        new = publish_model(store, new_dir, tiny_sum_card())
        set_serving_version(store, "sum", new, replaced=before)
        threading.Thread(target=ask_to_load, args=(server.url,), daemon=True).start()
        time.sleep(0.3)  # the server is downloading or loading the new version
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        killed.set()
        loader.join(timeout=60)
        result = outcome["result"]
        # every answer before the kill was a whole answer from one version or the other
        assert set(versions_seen) <= {before, new} and versions_seen
        assert all(status in (200, "no answer") for status in result.statuses), result.statuses

        # start again, asking from the first moment on: nothing may be answered before the version is loaded
        answers: list[tuple[int, str | None]] = []
        stop_asking = threading.Event()

        def keep_asking() -> None:
            while not stop_asking.is_set():
                answers.append(ask(server.url))
                time.sleep(0.02)

        asker = threading.Thread(target=keep_asking)
        asker.start()
        started = time.monotonic()
        server.start()
        restart_seconds = time.monotonic() - started
        time.sleep(0.5)
        stop_asking.set()
        asker.join()
        answered = [(status, version) for status, version in answers if status]
        assert answered and all(answer == (200, new) for answer in answered), answered[:10]

        assert served_version(server.url, "sum") == new == serving_version(store, "sum")
        with grpc.insecure_channel(server.grpc) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert list(stub.ModelMetadata(pb.ModelMetadataRequest(name="sum")).versions) == [new]
        after = run_load(server.url, lambda c, n: (V1, BODY), clients=32, total=2000, seconds=60)
        assert after.errors == 0 and after.requests == 2000, after.error_samples
        report(
            request,
            f"restart: {len(versions_seen)} answers before SIGKILL ({before} or {new}), "
            f"restarted in {restart_seconds:.1f} s on {new}; {len(answered)} answered while it "
            f"started, all by {new}; then {after.summary()}",
        )
    finally:
        killed.set()
        loader.join(timeout=60)
        set_serving_version(store, "sum", before)  # the tests' own server still serves it


def ask_to_load(url: str) -> None:
    """The repository load a deployment sends; the server is killed while it runs."""
    request = urllib.request.Request(f"{url}/v2/repository/models/sum/load", data=b"", method="POST")
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=60).close()
