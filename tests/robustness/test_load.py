"""Load on the real model server, over HTTP and over gRPC: thousands of requests from 32 clients,
none failing, also while a new model version is published and swapped in."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from components.deploy.deploy import deploy
from components.deploy.repository_client import load_version, served_version
from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model
from components.store.model_registry import set_serving_version
from components.store.object_store import ObjectStore
from tests.loadgen import run_grpc_load, run_load
from tests.robustness.raw_http import report

pytestmark = pytest.mark.integration

CLIENTS = 32
PROTOCOLS = ["http", "grpc"]


def request_pool(count: int = 64, seed: int = 0, protocol: str = "http") -> list[tuple[object, int]]:
    """Requests of 1 to 20 rows and their row counts: V1 and V2 ((path, body)) over HTTP; tensor
    contents and raw bytes (serialized ModelInferRequests) over gRPC."""
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(count):
        rows = int(rng.integers(1, 21))
        pairs = np.round(rng.uniform(0, 10_000, size=(rows, 2)), 3)
        if protocol == "grpc":
            tensor = {"name": "pairs", "shape": [rows, 2], "datatype": "FP64"}
            request = (
                pb.ModelInferRequest(model_name="sum", inputs=[tensor], raw_input_contents=[pairs.tobytes()])
                if i % 2
                else pb.ModelInferRequest(
                    model_name="sum", inputs=[{**tensor, "contents": {"fp64_contents": pairs.ravel()}}]
                )
            )
            pool.append((request.SerializeToString(), rows))
        elif i % 2:
            pool.append((("/v1/models/sum:predict", json.dumps({"instances": pairs.tolist()}).encode()), rows))
        else:
            body = {
                "inputs": [
                    {"name": "pairs", "shape": [rows, 2], "datatype": "FP64", "data": pairs.reshape(-1).tolist()}
                ]
            }
            pool.append((("/v2/models/sum/infer", json.dumps(body).encode()), rows))
    return pool


class Answers:
    """Checks each answer against the request its client sent last (one in flight per client)."""

    def __init__(self, pool: list[tuple[object, int]]) -> None:
        self.pool = pool
        self.expected: dict[int, int] = {}
        self.versions: dict[int, list[str]] = defaultdict(list)

    def make(self, client: int, n: int) -> object:
        request, rows = self.pool[n % len(self.pool)]
        self.expected[client] = rows
        return request

    def check(self, client: int, status: object, body: bytes, seconds: float) -> str | None:
        if status == "OK":
            answer = pb.ModelInferResponse.FromString(body)
            predictions = (
                np.frombuffer(answer.raw_output_contents[0])
                if answer.raw_output_contents
                else list(answer.outputs[0].contents.fp64_contents)
            )
            version = answer.model_version
        elif status == 200:
            answer = json.loads(body)
            predictions = answer["predictions"] if "predictions" in answer else answer["outputs"][0]["data"]
            version = answer.get("model_version")
        else:
            return f"status {status}: {body[:200]!r}"
        if not version:
            return f"the answer names no model version: {body[:200]!r}"
        self.versions[client].append(version)
        rows = self.expected[client]
        if len(predictions) != rows or not np.isfinite(np.asarray(predictions, dtype=float)).all():
            return f"expected {rows} finite predictions, got {str(predictions)[:100]}"
        return None


def load_runner(protocol: str, request: pytest.FixtureRequest):
    """run_load or run_grpc_load, bound to the tests' server."""
    if protocol == "grpc":
        address = request.getfixturevalue("model_server_grpc")
        return lambda *args, **kwargs: run_grpc_load(address, *args, **kwargs)
    url = request.getfixturevalue("model_server")
    return lambda *args, **kwargs: run_load(url, *args, **kwargs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_5000_requests_at_32_clients_without_an_error(protocol, deployed_sum, request):
    answers = Answers(request_pool(protocol=protocol))
    result = load_runner(protocol, request)(answers.make, clients=CLIENTS, total=5000, seconds=120, check=answers.check)
    report(request, f"load {protocol}: {result.summary()}")
    assert result.requests == 5000, f"only {result.requests} requests within the time bound"
    assert result.errors == 0, result.error_samples
    assert len(answers.versions) == CLIENTS


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_new_version_is_swapped_in_under_load_without_a_failed_request(
    protocol, model_server, deployed_sum, store_config, tmp_path, request
):
    """Publish and deploy while 32 clients send requests: none fails, every answer names a version,
    and each client sees versions only move forward (old, then new)."""
    before = served_version(model_server, "sum")
    new_model = train_tiny_sum_model(tmp_path / "model", seed=7)  # before the load: training is not the test
    answers = Answers(request_pool(seed=1, protocol=protocol))
    run = load_runner(protocol, request)
    deployed = threading.Event()
    after_deploy = [0]

    def check(client: int, status: int, body: bytes, seconds: float) -> str | None:
        if deployed.is_set():
            after_deploy[0] += 1
        return answers.check(client, status, body, seconds)

    outcome: dict[str, object] = {}

    def load() -> None:
        # until 2,000 answers came after the deployment finished (and never longer than two minutes)
        outcome["result"] = run(
            answers.make, clients=CLIENTS, seconds=120, check=check, until=lambda: after_deploy[0] >= 2000
        )

    loader = threading.Thread(target=load)
    loader.start()
    try:
        while sum(map(len, answers.versions.values())) < 500 and loader.is_alive():  # traffic flows first
            time.sleep(0.05)
        new = deploy(ObjectStore(store_config), new_model, tiny_sum_card(), "local", model_server)
        deployed.set()
    finally:
        deployed.set()
        loader.join(timeout=150)
    result = outcome["result"]
    report(request, f"swap under load {protocol}: {result.summary()}; {before} -> {new}")
    try:
        check_swap(answers, result, model_server, before, new)
    finally:  # leave the server serving what it served before, for the tests that follow
        set_serving_version(ObjectStore(store_config), "sum", before)
        load_version(model_server, "sum", before)


def check_swap(answers: Answers, result, model_server: str, before: str, new: str) -> None:
    assert result.errors == 0, result.error_samples
    assert new != before and served_version(model_server, "sum") == new
    versions = answers.versions
    assert set().union(*versions.values()) == {before, new}
    for client, seen in versions.items():
        first_new = seen.index(new) if new in seen else len(seen)
        assert all(v == before for v in seen[:first_new]) and all(v == new for v in seen[first_new:]), (
            f"client {client} saw versions move backwards: {seen}"
        )
    assert all(seen[-1] == new for seen in versions.values())
