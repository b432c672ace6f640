"""A minimal client of the KServe V1 and V2 REST protocols, for summaries, deploy checks and tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def is_live(server_url: str) -> bool:
    """True when a KServe server answers its V2 liveness endpoint."""
    try:
        with urllib.request.urlopen(f"{server_url}/v2/health/live", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


def post_json(url: str, body: Any, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    """POST JSON and return (status, decoded body) for any HTTP status."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except json.JSONDecodeError:
            return error.code, {"error": raw.decode(errors="replace")}


def predict_v1(server_url: str, model: str, instances: list[list[float]]) -> dict[str, Any]:
    status, body = post_json(f"{server_url}/v1/models/{model}:predict", {"instances": instances})
    if status != 200:
        raise RuntimeError(f"V1 predict on {model} failed with HTTP {status}: {body}")
    return body


def infer_v2(server_url: str, model: str, input_name: str, rows: list[list[float]]) -> dict[str, Any]:
    request = {
        "inputs": [
            {
                "name": input_name,
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP64",
                "data": [v for row in rows for v in row],
            }
        ]
    }
    status, body = post_json(f"{server_url}/v2/models/{model}/infer", request)
    if status != 200:
        raise RuntimeError(f"V2 infer on {model} failed with HTTP {status}: {body}")
    return body
