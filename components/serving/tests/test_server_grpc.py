"""The real model server over gRPC (the Open Inference Protocol): metadata, readiness, inference
with tensor contents and raw bytes, version naming, envelope flags, errors and the repository."""

import urllib.request

import grpc
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from components.deploy.repository_client import served_version

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stub(model_server_grpc):
    with grpc.insecure_channel(model_server_grpc) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def sum_request(rows, raw=False, **fields) -> pb.ModelInferRequest:
    values = np.asarray(rows, dtype=np.float64)
    tensor = {"name": "pairs", "datatype": "FP64", "shape": list(values.shape)}
    if raw:
        return pb.ModelInferRequest(model_name="sum", inputs=[tensor], raw_input_contents=[values.tobytes()], **fields)
    return pb.ModelInferRequest(
        model_name="sum", inputs=[{**tensor, "contents": {"fp64_contents": values.ravel()}}], **fields
    )


def outputs(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Each output as an array of its shape, from contents or raw bytes."""
    found = {}
    for i, output in enumerate(response.outputs):
        dtype = np.float64 if output.datatype == "FP64" else np.bool_
        if response.raw_output_contents:
            data = np.frombuffer(response.raw_output_contents[i], dtype=dtype)
        else:
            data = np.asarray(output.contents.fp64_contents if dtype is np.float64 else output.contents.bool_contents)
        found[output.name] = data.reshape(list(output.shape))
    return found


def test_server_and_model_metadata_and_readiness(stub, deployed_sum):
    assert stub.ServerLive(pb.ServerLiveRequest()).live and stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest()).name
    assert stub.ModelReady(pb.ModelReadyRequest(name="sum")).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="sum", version=deployed_sum)).ready
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="sum"))
    assert list(meta.versions) == [deployed_sum]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("pairs", "FP32", [-1, 2])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("sum", "FP64", [-1]),
        ("out_of_envelope", "BOOL", [-1]),
    ]


@pytest.mark.parametrize("raw", [False, True], ids=["contents", "raw"])
def test_infer_names_the_version_and_flags_rows_outside_the_envelope(stub, deployed_sum, raw):
    response = stub.ModelInfer(sum_request([[2000, 3000], [1_000_000, 4]], raw=raw, id="q-1"))
    assert (response.model_name, response.model_version, response.id) == ("sum", deployed_sum, "q-1")
    answer = outputs(response)
    assert answer["sum"].shape == (2,) and np.isfinite(answer["sum"]).all()
    assert answer["out_of_envelope"].tolist() == [False, True]
    assert bool(response.raw_output_contents) == raw  # raw bytes in, raw bytes out, as Triton does


def test_the_same_numbers_as_over_rest(stub, model_server, deployed_sum):
    from components.serving.client import predict_v1

    rows = [[1, 2], [3000, 4000], [12.5, 0.25]]
    rest = predict_v1(model_server, "sum", rows)["predictions"]
    assert outputs(stub.ModelInfer(sum_request(rows)))["sum"].tolist() == pytest.approx(rest, rel=1e-6)


def test_three_body_answers_six_columns_per_row(stub, deployed_three_body):
    queries = np.array([[1.0, -0.2, 0.5], [2.0, -0.1, 0.3]])
    for raw in (False, True):
        tensor = {"name": "queries", "datatype": "FP64", "shape": [2, 3]}
        if raw:
            request = pb.ModelInferRequest(
                model_name="three-body", inputs=[tensor], raw_input_contents=[queries.tobytes()]
            )
        else:
            request = pb.ModelInferRequest(
                model_name="three-body", inputs=[{**tensor, "contents": {"fp64_contents": queries.ravel()}}]
            )
        response = stub.ModelInfer(request)
        assert response.model_version == deployed_three_body
        assert outputs(response)["positions"].shape == (2, 6)


@pytest.mark.parametrize(
    "request_, code, says",
    [
        (pb.ModelInferRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
        (sum_request([[1, 2]], model_version="1"), grpc.StatusCode.NOT_FOUND, "not served"),
        (
            pb.ModelInferRequest(
                model_name="sum",
                inputs=[
                    {"name": "pairs", "datatype": "FP64", "shape": [1, 3], "contents": {"fp64_contents": [1, 2, 3]}}
                ],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "shape",
        ),
        (sum_request([[np.nan, 2]]), grpc.StatusCode.INVALID_ARGUMENT, "nan"),
    ],
    ids=["unknown model", "version not served", "three columns", "NaN"],
)
def test_refusals_carry_a_status_and_a_message(stub, deployed_sum, request_, code, says):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request_)
    assert caught.value.code() == code and says in caught.value.details().lower()
    assert stub.ModelReady(pb.ModelReadyRequest(name="sum")).ready


def test_repository_load_over_grpc_follows_the_serving_record(stub, model_server, deployed_sum):
    response = stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="sum"))
    assert response.isLoaded and response.model_name == "sum"
    assert served_version(model_server, "sum") == deployed_sum
    with pytest.raises(grpc.RpcError) as caught:
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_requests_are_counted_like_rest_requests(stub, model_server, deployed_sum):
    """The project's row counter and KServe's own predict histogram, both on /metrics."""

    def counts() -> tuple[float, float]:
        with urllib.request.urlopen(f"{model_server}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()

        def metric(name: str, label: str) -> float:
            return sum(float(line.split()[-1]) for line in lines if line.startswith(name) and label in line)

        return (
            metric("fuseml_predicted_rows_total", 'model="sum"'),
            metric("request_predict_seconds_count", 'model_name="sum"'),
        )

    rows_before, requests_before = counts()
    stub.ModelInfer(sum_request([[1, 2]] * 7, raw=True))
    stub.ModelInfer(sum_request([[3, 4]]))
    rows_after, requests_after = counts()
    assert (rows_after - rows_before, requests_after - requests_before) == (8, 2)
