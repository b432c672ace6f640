"""Interoperability: standard inference clients (Triton's, KServe's, raw HTTP) against the real
model server, over REST and gRPC, each in a process of its own (see tests/interop/clients.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from components.serving.client import predict_v1
from tests.interop.clients import CLIENTS
from tests.robustness.raw_http import report

pytestmark = pytest.mark.integration

ROWS = {
    "sum": [[1, 2], [3000, 4000], [1_000_000, 4]],
    "three-body": [[1.0, -0.2, 0.5], [2.0, -0.1, 0.3], [9.0, -0.3, 0.4]],
}
NAMES = {"sum": ("pairs", "sum"), "three-body": ("queries", "positions")}


@pytest.fixture(scope="module")
def expected(model_server, model_server_grpc, deployed_sum, deployed_three_body) -> dict:
    """What every client must get: the served versions, and the answers the server gives over V1."""
    models = {}
    for name, rows in ROWS.items():
        answer = predict_v1(model_server, name, rows)
        models[name] = {
            "version": answer["model_version"],
            "rows": rows,
            "answers": answer["predictions"],
            "flags": answer["out_of_envelope"],
            "input": NAMES[name][0],
            "output": NAMES[name][1],
        }
    assert all(model["version"] for model in models.values())  # (other tests may have deployed newer ones)
    assert np.asarray(models["three-body"]["answers"]).shape == (3, 6)
    return {"http": model_server, "grpc": model_server_grpc, "models": models}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_standard_client_gets_answers_and_readable_refusals(client, expected, request):
    done = subprocess.run(
        [sys.executable, "-m", "tests.interop.clients", client, json.dumps(expected)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no report from {client}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    outcome = json.loads(lines[-1])
    report(request, f"interop {client}: {len(outcome['passed'])} checks passed, {len(outcome['failed'])} failed")
    assert not outcome["failed"], "\n".join(outcome["failed"])
    assert done.returncode == 0 and len(outcome["passed"]) >= 8, done.stderr[-2000:]
