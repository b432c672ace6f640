"""Bad input over real gRPC (the Open Inference Protocol): every case gets a client status
(INVALID_ARGUMENT, NOT_FOUND, ...) whose message names the problem, never INTERNAL or UNKNOWN,
and the server is still ready after each one.

Requests are built as protobuf messages, or as raw bytes where protobuf itself would refuse
to build them, and sent through a plain channel.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.robustness.raw_http import report

pytestmark = pytest.mark.integration

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
LIMIT = 1024 * 1024  # the server's default --max-body-bytes, also its largest gRPC message


@dataclass
class Case:
    name: str
    request: pb.ModelInferRequest | bytes
    code: grpc.StatusCode
    says: str  # what the status details must mention (case-insensitive)


def tensor(contents: dict | None = None, **fields) -> dict:
    base = {"name": "pairs", "shape": [1, 2], "datatype": "FP64"}
    base.update(fields)
    if contents is None:
        contents = {"fp64_contents": [1.0, 2.0]}
    return {**base, "contents": contents} if contents else base


def infer(*tensors: dict, model: str = "sum", **fields) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name=model, inputs=list(tensors), **fields)


def raw(data: bytes, count: int = 1, **fields) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="sum", inputs=[tensor({}, **fields)] * count, raw_input_contents=[data])


CASES = [
    Case("unknown model", infer(tensor(), model="nope"), NOT_FOUND, "nope"),
    Case("no model name", infer(tensor(), model=""), NOT_FOUND, "does not exist"),
    Case("version that is not served", infer(tensor(), model_version="1"), NOT_FOUND, "not served"),
    Case("no input tensor", infer(), INVALID, "exactly one input"),
    Case("two input tensors", infer(tensor(), tensor()), INVALID, "exactly one input"),
    Case("wrong tensor name", infer(tensor(name="x")), INVALID, "named 'pairs'"),
    Case("no tensor name", infer(tensor(name="")), INVALID, "named 'pairs'"),
    Case("no datatype", infer(tensor(datatype="")), INVALID, "content type"),
    Case("INT64 datatype", infer(tensor({"int64_contents": [1, 2]}, datatype="INT64")), INVALID, "datatype"),
    Case("BOOL datatype", infer(tensor({"bool_contents": [True, False]}, datatype="BOOL")), INVALID, "datatype"),
    Case("BYTES datatype", infer(tensor({"bytes_contents": [b"1", b"2"]}, datatype="BYTES")), INVALID, "datatype"),
    Case("unknown datatype", infer(tensor(datatype="FLOAT")), INVALID, "content type"),
    Case("FP16 raw", raw(np.ones(2, dtype=np.float16).tobytes(), datatype="FP16"), INVALID, "FP16"),
    Case("three columns", infer(tensor({"fp64_contents": [1, 2, 3]}, shape=[1, 3])), INVALID, "shape"),
    Case("one-dimensional shape", infer(tensor(shape=[2])), INVALID, "shape"),
    Case("three-dimensional shape", infer(tensor(shape=[1, 2, 1])), INVALID, "shape"),
    Case("no shape", infer(tensor(shape=[])), INVALID, "shape"),
    Case("shape and data length differ", infer(tensor(shape=[2, 2])), INVALID, "values but shape"),
    Case("negative shape", infer(tensor(shape=[-1, 2])), INVALID, "at least one row"),
    Case("empty batch", infer(tensor({"fp64_contents": []}, shape=[0, 2])), INVALID, "empty"),
    Case("no data", infer(tensor({})), INVALID, "values but shape"),
    Case(
        "oversized batch",
        infer(tensor({"fp64_contents": [1.0] * 20_002}, shape=[10_001, 2])),
        INVALID,
        "limit of 10000",
    ),
    Case("NaN", infer(tensor({"fp64_contents": [float("nan"), 2]})), INVALID, "nan"),
    Case("Infinity", infer(tensor({"fp64_contents": [1, float("inf")]})), INVALID, "inf"),
    Case("beyond float32", infer(tensor({"fp64_contents": [1e39, 2]})), INVALID, "float32"),
    Case("FP32 NaN", infer(tensor({"fp32_contents": [float("nan"), 2]}, datatype="FP32")), INVALID, "nan"),
    Case("data in the wrong contents field", infer(tensor({"fp32_contents": [1, 2]})), INVALID, "values but shape"),
    Case("raw bytes too few for the shape", raw(np.ones(3).tobytes(), shape=[2, 2]), INVALID, "raw_input_contents"),
    Case("raw bytes not a whole number of values", raw(b"\x00" * 13), INVALID, "raw_input_contents"),
    Case("raw NaN", raw(np.array([np.nan, 1.0]).tobytes()), INVALID, "nan"),
    Case("raw contents for two inputs given one", raw(np.ones(2).tobytes(), count=2), INVALID, "does not match"),
    Case(
        "raw contents and tensor contents both",
        pb.ModelInferRequest(model_name="sum", inputs=[tensor()], raw_input_contents=[np.ones(2).tobytes()]),
        INVALID,
        "contents",
    ),
    Case("unknown requested output", infer(tensor(), outputs=[{"name": "product"}]), INVALID, "unknown output"),
    Case(
        "message over the size limit",
        infer(tensor({"fp64_contents": [1.5] * (LIMIT // 8 + 2)}, shape=[LIMIT // 16 + 1, 2])),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "larger than max",
    ),
    Case(
        "bytes that are not a protobuf message",
        b"\xff\xff\xff\xff garbage",
        INVALID,
        "does not parse as a inference.ModelInferRequest",
    ),
    Case(
        "three-body: two columns",
        infer(tensor({"fp64_contents": [1, 2]}, name="queries"), model="three-body"),
        INVALID,
        "shape",
    ),
]


@pytest.fixture(scope="module")
def channel(model_server_grpc):
    with grpc.insecure_channel(model_server_grpc) as channel:
        yield channel


def send(channel: grpc.Channel, request: pb.ModelInferRequest | bytes) -> tuple[grpc.StatusCode, str]:
    serialize = None if isinstance(request, bytes) else pb.ModelInferRequest.SerializeToString
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=serialize,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    try:
        call(request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_bad_input_over_grpc_gets_a_client_status_naming_the_problem(
    channel, deployed_sum, deployed_three_body, request
):
    assert len(CASES) >= 30
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    failures, codes = [], Counter()
    for case in CASES:
        code, details = send(channel, case.request)
        codes[code.name] += 1
        if code != case.code or case.says.lower() not in details.lower():
            failures.append(
                f"{case.name}: expected {case.code.name} mentioning {case.says!r}, got {code.name} {details[:300]!r}"
            )
        if not stub.ModelReady(pb.ModelReadyRequest(name="sum")).ready:
            failures.append(f"{case.name}: the server is no longer ready")
            break
    server_faults = sum(n for name, n in codes.items() if name in ("UNKNOWN", "INTERNAL"))
    report(
        request,
        f"bad input gRPC: {len(CASES)} cases, {len(CASES) - len(failures)} answered as expected, "
        f"codes {dict(sorted(codes.items()))}, server ready after each",
    )
    assert not failures, "\n".join(failures)
    assert server_faults == 0


def test_model_calls_for_unknown_models_and_versions_are_not_found(channel, deployed_sum):
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    calls = [
        (stub.ModelReady, pb.ModelReadyRequest(name="nope"), "nope"),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="nope"), "nope"),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="sum", version="1"), "not served"),
        (stub.ModelReady, pb.ModelReadyRequest(name="sum", version="1"), "not served"),
        (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="nope"), "nope"),
    ]
    for method, message, says in calls:
        with pytest.raises(grpc.RpcError) as caught:
            method(message, timeout=30)
        assert caught.value.code() == NOT_FOUND and says in caught.value.details(), (message, caught.value)
