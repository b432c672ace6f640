"""The server's request checks: numpy on the common path, `payloads`' messages for everything else.

`payloads.parse_v1` / `parse_v2` say precisely what is wrong with a request but walk every
number in Python. Here a well-formed batch is checked with numpy and one pass over the value
types (so `true`, `"2"` and `null` are still refused, not coerced); anything the fast path
does not accept goes to `payloads` for its message. Three gaps of theirs are closed here:

- a number beyond the float32 range the SavedModels compute in (a JSON `1e39` or a 400-digit
  integer) is refused, instead of becoming infinity inside the model and `null` in the answer;
- integers too large for a float and data nested deeper than Python's recursion limit get a
  400 instead of an OverflowError or RecursionError (a 500);
- (in `server.StoreBackedModel._answer`) an answer that is not a finite number is refused,
  never sent as `null`.

Nothing here decodes bytes: KServe (orjson, or FastAPI's json for V2) has parsed the JSON
before the model sees it, and no path unpickles or evaluates input.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from components.serving.payloads import MAX_BATCH, V2_DATATYPES, parse_v1, parse_v2

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER_TYPES = {int, float}


def rows_v1(payload: Any, width: int, max_batch: int = MAX_BATCH) -> np.ndarray:
    """V1 {"instances": [[...], ...]} as a checked [n, width] float64 array."""
    if type(payload) is dict:
        rows = payload.get("instances")
        if type(rows) is list and 0 < len(rows) <= max_batch:
            fast = _fast_matrix(rows, width)
            if fast is not None:
                return fast
    return _in_range(_precise(lambda: parse_v1(payload, width, max_batch)), "instances")


def rows_v2(request: InferRequest, input_name: str, width: int, max_batch: int = MAX_BATCH) -> np.ndarray:
    """V2 one input tensor [n, width] FP32/FP64, flat or nested row-major, as a checked float64 array."""
    if len(request.inputs) == 1:
        tensor = request.inputs[0]
        shape = tensor.shape
        if type(shape) is not list or not all(type(d) is int for d in shape):  # the binary path skips pydantic
            raise InvalidInput(f"input shape must be a list of integers, got {str(shape)[:80]}")
        if (
            tensor.name == input_name
            and tensor.datatype in V2_DATATYPES
            and len(shape) == 2
            and shape[1] == width
            and 0 < shape[0] <= max_batch
        ):
            fast = _fast_tensor(tensor.data, shape[0], width)
            if fast is not None:
                return fast
            _check_nesting(tensor.data, width)
    return _in_range(_precise(lambda: parse_v2(request, input_name, width, max_batch)), "input data")


def _fast_matrix(rows: list, width: int) -> np.ndarray | None:
    """A list of rows of `width` plain numbers as float64, or None to let `payloads` explain.

    Flattened in Python first: numpy reads a flat list of floats several times faster than
    nested lists, and the type scan needs the flat values anyway. A row that is not a list of
    numbers (a string, an object, a nested list) fails the length or the type test.
    """
    try:
        if set(map(len, rows)) != {width}:
            return None
    except TypeError:  # a number where a row should be
        return None
    values = list(itertools.chain.from_iterable(rows))
    # only int and float may pass: numpy would turn "2" into 2.0, true into 1.0 and null into nan
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return None
    try:
        matrix = np.array(values, dtype=np.float64).reshape(len(rows), width)
    except OverflowError:  # an integer beyond any float
        return None
    return matrix if _all_in_range(matrix) else None


def _fast_tensor(data: Any, n: int, width: int) -> np.ndarray | None:
    if isinstance(data, np.ndarray):  # the binary tensor extension: already numbers
        if data.dtype.kind == "f" and data.size == n * width:
            matrix = data.astype(np.float64).reshape(n, width)
            return matrix if _all_in_range(matrix) else None
        return None
    if type(data) is not list or not data:
        return None
    if type(data[0]) is list:
        return _fast_matrix(data, width) if len(data) == n else None
    try:
        flat = np.array(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if flat.shape != (n * width,) or not set(map(type, data)) <= _NUMBER_TYPES or not _all_in_range(flat):
        return None
    return flat.reshape(n, width)


def _all_in_range(values: np.ndarray) -> bool:
    """Finite and within float32 range, in one reduction (a NaN makes the comparison false)."""
    return bool(np.abs(values).max() <= FLOAT32_MAX)


def _check_nesting(data: Any, width: int) -> None:
    """V2 data are flat, or rows of `width` numbers; payloads would flatten any nesting at all."""
    if type(data) is list and any(type(item) is list for item in data):
        for i, item in enumerate(data):
            if type(item) is not list or len(item) != width or any(type(v) is list for v in item):
                raise InvalidInput(
                    f"input data[{i}] must be a row of {width} numbers: send the data flat, "
                    f"or as rows matching the shape [n, {width}]"
                )


def _precise(parse: Callable[[], np.ndarray]) -> np.ndarray:
    """Run a `payloads` parser; turn the errors it lets through into 400s that say what is wrong."""
    try:
        return parse()
    except OverflowError:
        raise InvalidInput("a number in the request is too large to be a floating-point number") from None
    except RecursionError:
        raise InvalidInput("the request data are nested too deeply: send rows of numbers") from None


def _in_range(matrix: np.ndarray, where: str) -> np.ndarray:
    """Refuse numbers the model, computing in float32, would see as infinity."""
    too_large = np.abs(matrix) > FLOAT32_MAX
    if too_large.any():
        row = int(np.flatnonzero(too_large.any(axis=1))[0])
        value = float(matrix[too_large][0])
        raise InvalidInput(
            f"{where}[{row}] holds {value:g}: beyond the float32 range (about ±3.4e38) the model computes in"
        )
    return matrix
