"""Clients no one here wrote, against the model server: one client per process.

`tritonclient.grpc` and KServe's gRPC stubs register the same protobuf names, so a process may
import only one of them; tests/interop/test_interop.py runs this script once per client:

    python -m tests.interop.clients CLIENT EXPECTED_JSON

EXPECTED_JSON holds the server's addresses and, per model, its served version, the rows asked
and the answers expected. The script prints one JSON line: the checks passed and failed.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import numpy as np

Expected = dict[str, Any]


class Checks:
    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:  # a failed check is reported, the others still run
            detail = str(error) or traceback.format_exc(limit=3)
            self.failed.append(f"{name}: {type(error).__name__}: {detail[:600]}")
        else:
            self.passed.append(name)


def check_answer(model: Expected, answer: np.ndarray, version: str | None, datatype: str) -> None:
    """Numbers, shape and datatype as expected; the version too, unless the client cannot show it (None)."""
    expected = np.asarray(model["answers"], dtype=np.float64)
    assert datatype == "FP64", f"datatype {datatype}"
    assert answer.shape == expected.shape, f"shape {answer.shape}, expected {expected.shape}"
    assert np.allclose(answer, expected, rtol=1e-6, atol=1e-9), f"{answer.tolist()} != {expected.tolist()}"
    if version is not None:
        assert version == model["version"], f"version {version!r}, expected {model['version']!r}"


def expect_refusal(call: Callable[[], Any], *says: str) -> None:
    """The call fails, and the error the client raises says (one of) `says` readably."""
    try:
        call()
    except Exception as error:
        refused_readably(error, says)
        return
    raise AssertionError(f"the request was not refused (expected an error saying {says})")


async def expect_refusal_async(call: Callable[[], Any], *says: str) -> None:
    try:
        await call()
    except Exception as error:
        refused_readably(error, says)
        return
    raise AssertionError(f"the request was not refused (expected an error saying {says})")


def refused_readably(error: Exception, says: tuple[str, ...]) -> None:
    message = str(error).lower()
    assert any(word.lower() in message for word in says), f"the error does not say {says}: {error}"


# What every client asks wrongly: (name, model, input name, rows, datatype, version, words the error says).
def bad_requests(expected: Expected) -> list[tuple[str, str, str, np.ndarray, str, str, tuple[str, ...]]]:
    return [
        ("unknown model", "nope", "pairs", np.ones((1, 2)), "FP64", "", ("nope",)),
        ("three columns", "sum", "pairs", np.ones((1, 3)), "FP64", "", ("shape",)),
        ("wrong input name", "sum", "x", np.ones((1, 2)), "FP64", "", ("pairs",)),
        ("INT64 data", "sum", "pairs", np.ones((1, 2), dtype=np.int64), "INT64", "", ("datatype",)),
        ("version not served", "sum", "pairs", np.ones((1, 2)), "FP64", "1", ("not served",)),
    ]


# ---------------------------------------------------------------- tritonclient


def triton_http(expected: Expected, checks: Checks, binary: bool) -> None:
    import tritonclient.http as client_module

    client = client_module.InferenceServerClient(urlsplit(expected["http"]).netloc)
    triton(client_module, client, expected, checks, binary)


def triton_grpc(expected: Expected, checks: Checks) -> None:
    import tritonclient.grpc as client_module

    client = client_module.InferenceServerClient(expected["grpc"])
    triton(client_module, client, expected, checks, binary=True)


def triton(module: Any, client: Any, expected: Expected, checks: Checks, binary: bool) -> None:
    grpc = module.__name__.endswith("grpc")
    with checks.check("server live, ready and metadata"):
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata()
    for name, model in expected["models"].items():
        with checks.check(f"{name}: ready and metadata name the version"):
            assert client.is_model_ready(name) and client.is_model_ready(name, model["version"])
            meta = client.get_model_metadata(name)
            versions = list(meta.versions) if grpc else meta["versions"]
            assert versions == [model["version"]], versions
        for versioned in (False, True):
            with checks.check(f"{name}: infer{' by version' if versioned else ''}"):
                rows = np.asarray(model["rows"], dtype=np.float64)
                tensor = module.InferInput(model["input"], list(rows.shape), "FP64")
                if grpc:
                    tensor.set_data_from_numpy(rows)
                    outputs = None
                else:
                    tensor.set_data_from_numpy(rows, binary_data=binary)
                    outputs = [
                        module.InferRequestedOutput(model["output"], binary_data=binary),
                        module.InferRequestedOutput("out_of_envelope", binary_data=binary),
                    ]
                result = client.infer(
                    name, [tensor], outputs=outputs, model_version=model["version"] if versioned else ""
                )
                response = result.get_response()
                version = response.model_version if grpc else response["model_version"]
                datatype = result.get_output(model["output"])
                datatype = datatype.datatype if grpc else datatype["datatype"]
                check_answer(model, result.as_numpy(model["output"]), version, datatype)
                assert result.as_numpy("out_of_envelope").tolist() == model["flags"]
    for case, name, input_name, rows, datatype, version, says in bad_requests(expected):
        with checks.check(f"refused readably: {case}"):

            def call() -> Any:
                tensor = module.InferInput(input_name, list(rows.shape), datatype)
                if grpc:
                    tensor.set_data_from_numpy(rows)
                else:
                    tensor.set_data_from_numpy(rows, binary_data=binary)
                return client.infer(name, [tensor], model_version=version)

            expect_refusal(call, *says)


# ---------------------------------------------------------------- KServe's own clients


def kserve_request(name: str, input_name: str, rows: np.ndarray, datatype: str, binary: bool = False) -> Any:
    from kserve import InferInput, InferRequest

    tensor = InferInput(input_name, list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return InferRequest(model_name=name, infer_inputs=[tensor], request_id="interop-1")


def kserve_rest(expected: Expected, checks: Checks) -> None:
    from kserve import InferenceRESTClient, RESTConfig

    async def run() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        url = expected["http"]
        with checks.check("server live and ready"):
            assert await client.is_server_live(url) and await client.is_server_ready(url)
        for name, model in expected["models"].items():
            with checks.check(f"{name}: ready"):
                assert await client.is_model_ready(url, name)
            for binary in (False, True):
                with checks.check(f"{name}: infer ({'binary' if binary else 'JSON'} tensors)"):
                    rows = np.asarray(model["rows"], dtype=np.float64)
                    response = await client.infer(
                        url, kserve_request(name, model["input"], rows, "FP64", binary), model_name=name
                    )
                    output = next(o for o in response.outputs if o.name == model["output"])
                    # this client's InferResponse.from_bytes (kserve 0.21) drops the model_version it received
                    check_answer(model, output.as_numpy(), None, output.datatype)
            with checks.check(f"{name}: the answer names the version (as a dict)"):
                rows = np.asarray(model["rows"], dtype=np.float64)
                answer = await client.infer(
                    f"{url}/v2/models/{name}/infer",
                    kserve_request(name, model["input"], rows, "FP64").to_rest()[0],
                    is_graph_endpoint=True,
                )
                assert answer["model_version"] == model["version"], answer
        for case, name, input_name, rows, datatype, version, says in bad_requests(expected):
            if version:  # this client has no way to name a version
                continue
            with checks.check(f"refused readably: {case}"):
                request = kserve_request(name, input_name, rows, datatype)
                await expect_refusal_async(lambda: client.infer(url, request, model_name=name), *says)
        await client.close()

    asyncio.run(run())


def kserve_grpc(expected: Expected, checks: Checks) -> None:
    from kserve import InferenceGRPCClient

    async def run() -> None:
        client = InferenceGRPCClient(expected["grpc"], timeout=30, retries=0)
        with checks.check("server live and ready"):
            assert await client.is_server_live() and await client.is_server_ready()
        for name, model in expected["models"].items():
            with checks.check(f"{name}: ready"):
                assert await client.is_model_ready(name)
            for binary in (False, True):
                with checks.check(f"{name}: infer ({'raw' if binary else 'contents'} tensors)"):
                    rows = np.asarray(model["rows"], dtype=np.float64)
                    response = await client.infer(kserve_request(name, model["input"], rows, "FP64", binary))
                    output = next(o for o in response.outputs if o.name == model["output"])
                    check_answer(model, output.as_numpy(), response.model_version, output.datatype)
        for case, name, input_name, rows, datatype, version, says in bad_requests(expected):
            with checks.check(f"refused readably: {case}"):
                request = kserve_request(name, input_name, rows, datatype)
                if version:
                    request.model_version = version
                await expect_refusal_async(lambda: client.infer(request), *says)
        await client.close()

    asyncio.run(run())


# ---------------------------------------------------------------- raw HTTP


def raw_http(expected: Expected, checks: Checks) -> None:
    parts = urlsplit(expected["http"])

    def post(path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    for headers_name, headers in (
        ("with Content-Type", {"Content-Type": "application/json"}),
        ("without any header", {}),
    ):
        for name, model in expected["models"].items():
            rows = np.asarray(model["rows"], dtype=np.float64)
            with checks.check(f"{name}: V1 {headers_name}"):
                status, body = post(f"/v1/models/{name}:predict", {"instances": rows.tolist()}, headers)
                assert status == 200, (status, body)
                check_answer(model, np.asarray(body["predictions"]), body["model_version"], "FP64")
            with checks.check(f"{name}: V2 {headers_name}"):
                request = {
                    "inputs": [
                        {
                            "name": model["input"],
                            "shape": list(rows.shape),
                            "datatype": "FP64",
                            "data": rows.ravel().tolist(),
                        }
                    ]
                }
                status, body = post(f"/v2/models/{name}/infer", request, headers)
                assert status == 200, (status, body)
                output = next(o for o in body["outputs"] if o["name"] == model["output"])
                answer = np.asarray(output["data"]).reshape(output["shape"])
                check_answer(model, answer, body["model_version"], output["datatype"])
        for case, name, input_name, rows, datatype, version, says in bad_requests(expected):
            with checks.check(f"refused readably {headers_name}: {case}"):
                path = f"/v2/models/{name}/versions/{version}/infer" if version else f"/v2/models/{name}/infer"
                request = {
                    "inputs": [
                        {
                            "name": input_name,
                            "shape": list(rows.shape),
                            "datatype": datatype,
                            "data": rows.ravel().tolist(),
                        }
                    ]
                }
                status, body = post(path, request, headers)
                assert 400 <= status < 500, (status, body)
                assert any(word.lower() in body["error"].lower() for word in says), body
    with checks.check("a present Content-Type that is not JSON is a 415"):
        status, body = post("/v1/models/sum:predict", {"instances": [[1, 2]]}, {"Content-Type": "text/csv"})
        assert status == 415 and "text/csv" in body["error"], (status, body)


CLIENTS: dict[str, Callable[[Expected, Checks], None]] = {
    "tritonclient.http-json": lambda expected, checks: triton_http(expected, checks, binary=False),
    "tritonclient.http-binary": lambda expected, checks: triton_http(expected, checks, binary=True),
    "tritonclient.grpc": triton_grpc,
    "kserve.InferenceRESTClient": kserve_rest,
    "kserve.InferenceGRPCClient": kserve_grpc,
    "raw-http": raw_http,
}


def main(argv: list[str]) -> int:
    name, expected = argv[0], json.loads(argv[1])
    checks = Checks()
    CLIENTS[name](expected, checks)
    print(json.dumps({"client": name, "passed": checks.passed, "failed": checks.failed}))
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
