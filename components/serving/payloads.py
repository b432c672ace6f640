"""Turn V1 and V2 request bodies into a checked [n, width] float array, or say what is wrong.

Every rejection raises `kserve.errors.InvalidInput`, which KServe answers with a 400 that
carries the message; nothing here can raise anything a client would see as a 5xx.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

MAX_BATCH = 10_000
V2_DATATYPES = ("FP32", "FP64")


def _check_matrix(rows: Any, width: int, where: str, max_batch: int) -> np.ndarray:
    if not isinstance(rows, list):
        raise InvalidInput(f"{where} must be a list of rows, got {type(rows).__name__}")
    if not rows:
        raise InvalidInput(f"{where} is empty: send at least one row")
    if len(rows) > max_batch:
        raise InvalidInput(f"{where} has {len(rows)} rows, more than the limit of {max_batch}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidInput(f"{where}[{i}] must be a list of {width} numbers, got {json.dumps(row)[:80]}")
        for value in row:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(f"{where}[{i}] holds {json.dumps(value)[:40]}, not a number")
            if not math.isfinite(value):
                raise InvalidInput(f"{where}[{i}] holds {value}: only finite numbers are accepted")
    return np.asarray(rows, dtype=np.float64)


def parse_v1(payload: Any, width: int, max_batch: int = MAX_BATCH) -> np.ndarray:
    """V1 body: {"instances": [[...], ...]}; bytes arrive when the client sent no JSON content type."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidInput(f"request body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidInput('request body must be a JSON object like {"instances": [[...], ...]}')
    if "instances" not in payload:
        raise InvalidInput('request body has no "instances" field')
    return _check_matrix(payload["instances"], width, "instances", max_batch)


def parse_v2(request: InferRequest, input_name: str, width: int, max_batch: int = MAX_BATCH) -> np.ndarray:
    """V2 body: one input tensor of shape [n, width], FP32 or FP64."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected exactly one input tensor named {input_name!r}, got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.name != input_name:
        raise InvalidInput(f"input tensor must be named {input_name!r}, got {tensor.name!r}")
    if tensor.datatype not in V2_DATATYPES:
        raise InvalidInput(f"input datatype must be one of {', '.join(V2_DATATYPES)}, got {tensor.datatype!r}")
    shape = list(tensor.shape)
    if len(shape) != 2 or shape[1] != width:
        raise InvalidInput(f"input shape must be [n, {width}], got {shape}")
    if shape[0] < 1:
        raise InvalidInput("input batch is empty: send at least one row")
    if shape[0] > max_batch:
        raise InvalidInput(f"input has {shape[0]} rows, more than the limit of {max_batch}")
    data = tensor.data
    if isinstance(data, np.ndarray):
        flat = data.reshape(-1).tolist()
    elif isinstance(data, list):
        flat = _flatten(data)
    else:
        raise InvalidInput("input data must be a list of numbers")
    if len(flat) != shape[0] * width:
        raise InvalidInput(f"input data has {len(flat)} values but shape {shape} needs {shape[0] * width}")
    return _check_matrix([flat[i * width : (i + 1) * width] for i in range(shape[0])], width, "input data", max_batch)


def _flatten(data: list[Any]) -> list[Any]:
    """V2 allows row-major nested lists as well as flat ones."""
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat
