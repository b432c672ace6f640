"""Bad input over real HTTP: every case gets a 4xx whose message names the problem, never a 5xx,
and the server is still ready after each one.

The bodies are sent as raw bytes with `http.client`, so content types, NaN/Infinity tokens,
broken JSON and binary garbage reach the server exactly as written here.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from components.deploy.repository_client import served_version
from tests.robustness.raw_http import is_ready, report, send

pytestmark = pytest.mark.integration

V1 = "/v1/models/sum:predict"
V2 = "/v2/models/sum/infer"
LIMIT = 1024 * 1024  # the server's default --max-body-bytes
OVER_LIMIT = b'{"instances": [' + b"[1.5, 2.5], " * (2 * LIMIT // 12) + b"[1, 2]]}"


@dataclass
class Case:
    name: str
    body: bytes
    status: int
    says: str  # what the error message must mention (case-insensitive)
    method: str = "POST"
    path: str | None = None  # the protocol's endpoint unless given
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


def v2(inputs=None, **extra) -> bytes:
    body = {
        "inputs": [{"name": "pairs", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]
        if inputs is None
        else inputs,
        **extra,
    }
    return json.dumps(body).encode()


def raw_data(data: bytes) -> bytes:
    """A V2 body whose tensor data are these bytes, verbatim (NaN, 400 digits, ...)."""
    return v2([tensor(data="DATA")]).replace(b'"DATA"', data)


def tensor(**fields) -> dict:
    base = {"name": "pairs", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def binary_v2(name: str, header: dict, says: str, payload: bytes = b"", length: str | None = None) -> Case:
    """The V2 binary tensor extension: a JSON header, raw tensor bytes, the header's length in a header."""
    head = json.dumps(header).encode()
    return Case(
        f"binary extension: {name}",
        head + payload,
        400,
        says,
        content_type="application/octet-stream",
        headers={"inference-header-content-length": length or str(len(head))},
    )


HUGE_INT = "1" + "0" * 400  # valid JSON, too large for any float
CLOUDEVENT = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "test", "ce-type": "predict"}

V1_CASES = [
    Case("broken JSON", b'{"instances": [[1, 2]', 400, "line 1"),
    Case("trailing garbage after the JSON", b'{"instances": [[1, 2]]} tail', 400, "after document"),
    Case("empty body", b"", 400, "empty"),
    Case("text/plain", b'{"instances": [[1, 2]]}', 415, "text/plain", content_type="text/plain"),
    Case(
        "form encoded", b"instances=1,2", 415, "x-www-form-urlencoded", content_type="application/x-www-form-urlencoded"
    ),
    Case(
        "multipart",
        b"--x\r\n\r\n1\r\n--x--",
        415,
        "multipart/form-data",
        content_type="multipart/form-data; boundary=x",
    ),
    Case("binary garbage as JSON", bytes(range(256)) * 4, 400, "utf-8"),
    Case(
        "binary garbage as octet-stream",
        b"\x89PNG\r\n\x1a\n\x00\x00\xff",
        400,
        "utf-8",
        content_type="application/octet-stream",
    ),
    Case("UTF-16 JSON", '{"instances": [[1, 2]]}'.encode("utf-16"), 400, "utf-8"),
    Case("a number instead of an object", b"5", 400, "JSON object"),
    Case("a list instead of an object", b"[[1, 2]]", 400, "JSON object"),
    Case("null body", b"null", 400, "JSON object"),
    Case("no instances field", b'{"rows": [[1, 2]]}', 400, "instances"),
    Case("instances is null", b'{"instances": null}', 400, "instances"),
    Case("instances is a string", b'{"instances": "1,2"}', 400, "instances"),
    Case("empty batch", b'{"instances": []}', 400, "empty"),
    Case("oversized batch", json.dumps({"instances": [[1, 2]] * 10_001}).encode(), 400, "limit of 10000"),
    Case("body over the size limit", OVER_LIMIT, 413, str(LIMIT)),
    Case("chunked body over the size limit", OVER_LIMIT, 413, str(LIMIT), chunked=True),
    Case("row too short", b'{"instances": [[1]]}', 400, "list of 2 numbers"),
    Case("row too long", b'{"instances": [[1, 2, 3]]}', 400, "list of 2 numbers"),
    Case("flat instead of rows", b'{"instances": [1, 2]}', 400, "list of 2 numbers"),
    Case("nested one level too deep", b'{"instances": [[[1, 2]]]}', 400, "list of 2 numbers"),
    Case("ragged rows", b'{"instances": [[1, 2], [3]]}', 400, "instances[1]"),
    Case("a string", b'{"instances": [[1, "2"]]}', 400, "not a number"),
    Case("a null", b'{"instances": [[1, null]]}', 400, "not a number"),
    Case("a boolean", b'{"instances": [[true, 2]]}', 400, "not a number"),
    Case("an object", b'{"instances": [[{"x": 1}, 2]]}', 400, "not a number"),
    Case("NaN token", b'{"instances": [[NaN, 2]]}', 400, "NaN"),
    Case("Infinity token", b'{"instances": [[Infinity, 2]]}', 400, "Infinity"),
    Case("-Infinity token", b'{"instances": [[1, -Infinity]]}', 400, "Infinity"),
    Case("1e400", b'{"instances": [[1e400, 2]]}', 400, "infinity"),
    Case("beyond float32", b'{"instances": [[1e39, 2]]}', 400, "float32"),
    Case("400-digit integer", f'{{"instances": [[{HUGE_INT}, 2]]}}'.encode(), 400, "number"),
    Case("arrays nested 100,000 deep", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "depth"),
    Case("unknown model", b'{"instances": [[1, 2]]}', 404, "nope", path="/v1/models/nope:predict"),
    Case("unknown action", b'{"instances": [[1, 2]]}', 404, ":frobnicate", path="/v1/models/sum:frobnicate"),
    Case("explain without an explainer", b'{"instances": [[1, 2]]}', 404, "explainer", path="/v1/models/sum:explain"),
    Case("GET instead of POST", b"", 405, "POST", method="GET", content_type=None),
    Case("PUT instead of POST", b'{"instances": [[1, 2]]}', 405, "POST", method="PUT"),
    Case(
        "binary CloudEvent with a broken body",
        b"\xff\xfe",
        400,
        "decode",
        content_type="application/cloudevents+json",
        headers=CLOUDEVENT,
    ),
    Case(
        "binary CloudEvent that is not an object",
        b"5",
        400,
        "decode",
        content_type="application/cloudevents+json",
        headers=CLOUDEVENT,
    ),
    Case(
        "CloudEvent of an unknown spec version",
        b'{"instances": [[1, 2]]}',
        400,
        "specversion",
        headers={**CLOUDEVENT, "ce-specversion": "0.1"},
    ),
]

V2_CASES = [
    Case("broken JSON", b'{"inputs": [', 400, "not valid JSON"),
    Case("trailing garbage after the JSON", v2() + b" tail", 400, "not valid JSON"),
    Case("empty body", b"", 400, "body: field required"),
    Case("text/plain", v2(), 415, "text/plain", content_type="text/plain"),
    Case("XML", v2(), 415, "application/xml", content_type="application/xml"),
    Case(
        "octet-stream without the binary header length",
        v2(),
        400,
        "inference-header-content-length",
        content_type="application/octet-stream",
    ),
    Case("binary garbage as JSON", bytes(range(256)) * 4, 400, "not valid JSON"),
    Case("a number instead of an object", b"5", 400, "dictionary"),
    Case("a list instead of an object", b"[1, 2]", 400, "dictionary"),
    Case("no inputs field", b"{}", 400, "inputs"),
    Case("inputs is null", b'{"inputs": null}', 400, "inputs"),
    Case("no input tensor", v2([]), 400, "exactly one input"),
    Case("two input tensors", v2([tensor(), tensor()]), 400, "exactly one input"),
    Case("wrong tensor name", v2([tensor(name="x")]), 400, "named 'pairs'"),
    Case("no tensor name", v2([tensor(name=...)]), 400, "name"),
    Case("no shape", v2([tensor(shape=...)]), 400, "shape"),
    Case("no datatype", v2([tensor(datatype=...)]), 400, "datatype"),
    Case("no data", v2([tensor(data=...)]), 400, "data"),
    Case("INT64 datatype", v2([tensor(datatype="INT64")]), 400, "datatype"),
    Case("BYTES datatype", v2([tensor(datatype="BYTES", data=["1", "2"])]), 400, "datatype"),
    Case("FP16 datatype", v2([tensor(datatype="FP16")]), 400, "FP16"),
    Case("unknown datatype", v2([tensor(datatype="FLOAT")]), 400, "datatype"),
    Case("three columns", v2([tensor(shape=[1, 3], data=[1, 2, 3])]), 400, "shape"),
    Case("one-dimensional shape", v2([tensor(shape=[2])]), 400, "shape"),
    Case("three-dimensional shape", v2([tensor(shape=[1, 2, 1])]), 400, "shape"),
    Case("shape and data length differ", v2([tensor(shape=[2, 2])]), 400, "values but shape"),
    Case("fractional shape", v2([tensor(shape=[1.5, 2])]), 400, "shape"),
    Case("negative shape", v2([tensor(shape=[-1, 2])]), 400, "at least one row"),
    Case("empty batch", v2([tensor(shape=[0, 2], data=[])]), 400, "empty"),
    Case("oversized batch", v2([tensor(shape=[10_001, 2], data=[1.0] * 20_002)]), 400, "limit of 10000"),
    Case("body over the size limit", v2([tensor(shape=[1, 2], data=[1.5] * (LIMIT // 4))]), 413, str(LIMIT)),
    Case("NaN token", raw_data(b"[NaN, 2]"), 400, "nan"),
    Case("Infinity token", raw_data(b"[1, Infinity]"), 400, "inf"),
    Case("1e400", raw_data(b"[1e400, 2]"), 400, "inf"),
    Case("beyond float32", v2([tensor(data=[1e39, 2])]), 400, "float32"),
    Case("400-digit integer", raw_data(f"[{HUGE_INT}, 2]".encode()), 400, "too large"),
    Case("a string", v2([tensor(data=[1, "2"])]), 400, "not a number"),
    Case("a null", v2([tensor(data=[1, None])]), 400, "not a number"),
    Case("a boolean", v2([tensor(data=[True, 2])]), 400, "not a number"),
    Case("rows nested wrong", v2([tensor(data=[[[1], [2]]])]), 400, "row of 2 numbers"),
    Case("arrays nested 900 deep", raw_data(b"[" * 900 + b"1" + b"]" * 900), 400, "row of 2"),
    Case("arrays nested 100,000 deep", raw_data(b"[" * 100_000 + b"]" * 100_000), 400, "RecursionError"),
    Case("unknown model", v2(), 404, "nope", path="/v2/models/nope/infer"),
    Case("version that is not served", v2(), 404, "not served", path="/v2/models/sum/versions/1/infer"),
    Case("GET instead of POST", b"", 405, "POST", method="GET", content_type=None),
    Case("unknown requested output", v2(outputs=[{"name": "product"}]), 400, "unknown output"),
    Case("id that is not a string", v2(id=5), 400, "id"),
    Case("parameters of the wrong type", v2(parameters={"x": [1]}), 400, "parameters"),
    binary_v2("header length not a number", {"inputs": []}, "decode", length="ten"),
    binary_v2("header without inputs", {"id": "1"}, "inputs"),
    binary_v2("inputs that are not objects", {"inputs": [5]}, "decode"),
    binary_v2(
        "fewer tensor bytes than the shape needs",
        {"inputs": [{"name": "pairs", "shape": [2, 2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]},
        "decode",
        np.ones(2).tobytes(),
    ),
]


def run_cases(url: str, default_path: str, cases: list[Case]) -> tuple[list[str], Counter]:
    failures, statuses = [], Counter()
    for case in cases:
        status, answer = send(
            url, case.method, case.path or default_path, case.body, case.content_type, case.headers, case.chunked
        )
        statuses[status] += 1
        message = answer.get("error", "") if isinstance(answer, dict) else str(answer)
        if status != case.status or case.says.lower() not in str(message).lower():
            failures.append(
                f"{case.name}: expected {case.status} mentioning {case.says!r}, got {status} {str(answer)[:300]}"
            )
        if not is_ready(url):
            failures.append(f"{case.name}: the server is no longer ready")
            break
    return failures, statuses


@pytest.mark.parametrize("protocol, path, cases", [("V1", V1, V1_CASES), ("V2", V2, V2_CASES)], ids=["V1", "V2"])
def test_bad_input_gets_a_4xx_naming_the_problem(model_server, deployed_sum, request, protocol, path, cases):
    assert len(cases) >= 30
    failures, statuses = run_cases(model_server, path, cases)
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    report(
        request,
        f"bad input {protocol}: {len(cases)} cases, {len(cases) - len(failures)} answered as "
        f"expected, {server_errors} 5xx, statuses {dict(sorted(statuses.items()))}, "
        f"server ready after each",
    )
    assert not failures, "\n".join(failures)
    assert server_errors == 0


def test_good_requests_still_work_after_the_bad_ones(model_server, deployed_sum):
    status, body = send(model_server, "POST", V1, b'{"instances": [[1, 2], [3000, 4000]]}')
    assert status == 200 and len(body["predictions"]) == 2 and body["model_version"]
    status, body = send(model_server, "POST", V2, v2([tensor(shape=[2, 2], data=[[1, 2], [3, 4]])]))
    assert status == 200 and body["outputs"][0]["shape"] == [2]
    status, body = send(model_server, "POST", V2, v2(outputs=[{"name": "out_of_envelope"}]))
    assert status == 200 and [o["name"] for o in body["outputs"]] == ["out_of_envelope"]
    # no Content-Type at all is JSON, as KServe's and Triton's servers (and Triton's client) have it
    status, answer = send(model_server, "POST", V1, b'{"instances": [[1, 2]]}', content_type=None)
    assert status == 200 and len(answer["predictions"]) == 1, answer
    status, answer = send(model_server, "POST", V2, v2(), content_type=None)
    assert status == 200 and answer["outputs"][0]["shape"] == [1], answer
    # the served version by its own versioned path, and charset parameters in the content type
    status, body = send(
        model_server,
        "POST",
        f"/v2/models/sum/versions/{body['model_version']}/infer",
        v2(),
        content_type="application/json; charset=utf-8",
    )
    assert status == 200, body


THREE_BODY_CASES = [
    Case("two numbers per row", b'{"instances": [[1, 2]]}', 400, "list of 3 numbers"),
    Case("NaN token", b'{"instances": [[NaN, -0.2, 0.5]]}', 400, "NaN"),
    Case("a string", b'{"instances": [[1, -0.2, "x"]]}', 400, "not a number"),
    Case("empty batch", b'{"instances": []}', 400, "empty"),
]


def test_three_body_bad_input_lightly(model_server, deployed_three_body, request):
    failures, statuses = run_cases(model_server, "/v1/models/three-body:predict", THREE_BODY_CASES)
    v2_status, v2_answer = send(
        model_server, "POST", "/v2/models/three-body/infer", v2([tensor(name="queries", shape=[1, 2])])
    )
    statuses[v2_status] += 1
    if v2_status != 400 or "shape" not in v2_answer.get("error", ""):
        failures.append(f"V2 two columns: got {v2_status} {v2_answer}")
    report(
        request, f"bad input three-body: {len(THREE_BODY_CASES) + 1} cases, statuses {dict(sorted(statuses.items()))}"
    )
    assert not failures, "\n".join(failures)
    status, body = send(model_server, "POST", "/v1/models/three-body:predict", b'{"instances": [[1.0, -0.2, 0.5]]}')
    assert status == 200 and np.asarray(body["predictions"]).shape == (1, 6)
    # The version that is served now: other tests of the session may have deployed a newer one.
    assert body["model_version"] == served_version(model_server, "three-body")
    assert is_ready(model_server, "three-body")


class _CreatesAFileWhenUnpickled:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickle_is_never_unpickled(model_server, deployed_sum, tmp_path):
    """A pickle that would create a file when loaded, sent every way a body can reach a decoder."""
    import pickle

    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_CreatesAFileWhenUnpickled(str(marker)))
    attempts = [
        (V1, payload, "application/octet-stream", {}),
        (V1, payload, "application/json", {}),
        (V1, payload, "application/cloudevents+json", CLOUDEVENT),
        (V2, payload, "application/json", {}),
    ]
    for datatype in ("FP64", "BYTES"):
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "pairs",
                        "shape": [1, 2],
                        "datatype": datatype,
                        "parameters": {"binary_data_size": len(payload)},
                    }
                ]
            }
        ).encode()
        attempts.append(
            (V2, header + payload, "application/octet-stream", {"inference-header-content-length": str(len(header))})
        )
    for path, body, content_type, headers in attempts:
        status, answer = send(model_server, "POST", path, body, content_type, headers)
        assert 400 <= status < 500, (path, content_type, status, answer)
    assert not marker.exists()
    assert is_ready(model_server)
