"""The seam to KServe: what the adapter relies on still exists in the installed kserve, and the V2
`infer` route with its response model answers exactly what KServe's own route answers."""

import asyncio
import inspect

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve import Model
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from prometheus_client import REGISTRY

from components.serving import kserve_adapter


class Adder(Model):
    def __init__(self) -> None:
        super().__init__("adder")
        self.ready = True

    async def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        rows = np.asarray(payload.inputs[0].data, dtype=np.float64).reshape(payload.inputs[0].shape)
        total = rows.sum(axis=1)
        return InferResponse(
            response_id="r-1",
            model_name=self.name,
            model_version="7",
            parameters={"note": "n"},
            infer_outputs=[
                InferOutput("sum", [len(total)], "FP64", total.tolist()),
                InferOutput("big", [len(total)], "BOOL", (total > 5).tolist()),
            ],
        )


class HeaderSettingDataPlane(DataPlane):
    async def infer(self, *args, **kwargs):
        response, headers = await super().infer(*args, **kwargs)
        return response, {**headers, "x-answered-by": "adder"}


def client(ours: bool) -> TestClient:
    repository = ModelRepository()
    repository.update(Adder())
    dataplane = HeaderSettingDataPlane(model_registry=repository)
    app = FastAPI()
    if ours:
        kserve_adapter.add_v2_infer_route(app, dataplane, None)
    register_v2_endpoints(app, dataplane, None)  # what KServe adds at start, after ours
    return TestClient(app)


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP64", "data": [1, 2, 3, 4.5, 1e20, -1]}]},
        {
            "id": "q",
            "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[0.1, 0.2]]}],
            "outputs": [{"name": "big"}],
        },
    ],
)
def test_the_same_answer_as_kserves_route(body):
    kserve_answer = client(ours=False).post("/v2/models/adder/infer", json=body)
    ours = client(ours=True).post("/v2/models/adder/infer", json=body)
    assert ours.status_code == kserve_answer.status_code == 200
    assert ours.json() == kserve_answer.json()
    for header in ("content-type", "x-answered-by"):
        assert ours.headers[header] == kserve_answer.headers[header]


class Unready(Model):
    """A model with nothing loaded: its `predict` refuses, and a `load` would read a store."""

    def __init__(self) -> None:
        super().__init__("unready")
        self.loads = 0

    def load(self) -> bool:
        self.loads += 1
        return False

    async def predict(self, payload, headers=None):
        raise ModelNotReady(self.name)


def predict_count(model_name: str) -> float:
    return REGISTRY.get_sample_value("request_predict_seconds_count", {"model_name": model_name}) or 0.0


def test_infer_calls_predict_times_it_as_kserve_does_and_never_loads_on_the_request_path():
    repository = ModelRepository()
    repository.update(Adder())
    repository.update(Unready())
    dataplane = kserve_adapter.ServingDataPlane(repository, served_version=lambda name: None)
    request = InferRequest("adder", [InferInput("x", [2, 2], "FP64", [1, 2, 3, 4])])
    before = predict_count("adder")

    response, headers = asyncio.run(dataplane.infer("adder", request, {"x-request-id": "1"}))

    assert response.outputs[0].data == [3.0, 7.0] and headers == {}
    assert predict_count("adder") == before + 1  # KServe's histogram, on /metrics as before
    with pytest.raises(ModelNotFound):
        asyncio.run(dataplane.infer("nope", request))
    with pytest.raises(ModelNotReady):
        asyncio.run(dataplane.infer("unready", request))
    assert repository.get_model("unready").loads == 0  # KServe's infer would have called load() on the loop


def parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_what_the_adapter_relies_on_is_still_in_kserve():
    """A kserve upgrade that renames or reshapes any of these fails here, not in production."""
    import uvicorn
    from cloudevents.http import CloudEvent
    from fastapi import FastAPI
    from kserve import ModelServer
    from kserve.model_server import app
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.servicer import InferenceServicer
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer
    from kserve.protocol.rest.v2_endpoints import V2Endpoints

    assert isinstance(app, FastAPI) and kserve_adapter.rest_app() is app
    assert parameters(ModelServer.__init__)[:3] == ["http_port", "grpc_port", "workers"]
    assert {"registered_models", "enable_grpc"} <= set(parameters(ModelServer.__init__))
    server = ModelServer(registered_models=ModelRepository(), enable_grpc=False, workers=1)
    assert isinstance(server.dataplane, DataPlane) and callable(server.setup_event_loop)
    assert isinstance(server.model_repository_extension, ModelRepositoryExtension)

    assert parameters(RESTServer.__init__)[:4] == ["app", "data_plane", "model_repository_extension", "http_port"]
    assert "workers" in parameters(RESTServer.__init__)
    rest = RESTServer("kserve.model_server:app", server.dataplane, server.model_repository_extension, 0, workers=1)
    assert isinstance(rest.config, uvicorn.Config) and rest.config.host == "0.0.0.0"  # what the adapter overrides
    assert inspect.iscoroutinefunction(RESTServer.start)
    assert parameters(RESTServer._add_middlewares) == ["app"]  # overridden: no per-request timing log lines
    assert "_add_middlewares(app)" in inspect.getsource(RESTServer.create_application)

    assert parameters(DataPlane.__init__) == ["model_registry"]
    assert parameters(DataPlane.decode)[:2] == ["body", "headers"]
    assert parameters(DataPlane.decode_cloudevent) == ["body"]
    assert parameters(DataPlane.infer) == ["model_name", "request", "headers"]
    assert parameters(Model.predict)[:2] == ["payload", "headers"]
    assert parameters(DataPlane.model_metadata) == ["model_name"]
    assert inspect.iscoroutinefunction(DataPlane.explain) and callable(DataPlane.metadata)
    assert callable(CloudEvent._get_attributes)

    assert parameters(ModelRepositoryExtension.__init__) == ["model_registry"]
    extension = ModelRepositoryExtension(model_registry=ModelRepository())
    assert isinstance(extension._model_registry, ModelRepository)
    assert inspect.iscoroutinefunction(ModelRepositoryExtension.load)
    assert inspect.iscoroutinefunction(ModelRepositoryExtension.unload)
    assert {"get_model", "update", "load", "unload", "is_model_ready"} <= set(dir(ModelRepository))

    assert parameters(V2Endpoints.__init__)[:2] == ["dataplane", "model_repository_extension"]
    assert parameters(V2Endpoints.infer)[:4] == ["raw_request", "raw_response", "model_name", "request_body"]

    assert parameters(InferenceServicer.__init__) == ["data_plane", "model_repository_extension"]
    for method in ("ServerMetadata", "ServerLive", "ServerReady", "ModelReady"):
        assert parameters(getattr(InferenceServicer, method)) == ["request", "context"]
    assert parameters(InferenceServicer.validate_grpc_request) == ["request"]
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    for method in service.methods:  # the adapter serves each method with the servicer's method of that name
        assert not method.client_streaming and not method.server_streaming
        assert callable(getattr(InferenceServicer, method.name)), method.name
        assert hasattr(pb, method.input_type.name) and hasattr(pb, method.output_type.name)
    assert "versions" in pb.ModelMetadataResponse.DESCRIPTOR.fields_by_name
    assert "raw_input_contents" in pb.ModelInferRequest.DESCRIPTOR.fields_by_name


def test_the_v2_types_carry_what_binary_answers_need():
    """Binary tensors (REST extension, gRPC raw contents) depend on these InferRequest/InferResponse parts."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(
        model_name="adder",
        inputs=[{"name": "x", "shape": [1, 2], "datatype": "FP64"}],
        raw_input_contents=[np.array([1.0, 2.0]).tobytes()],
    )
    decoded = InferRequest.from_grpc(request)
    assert decoded.use_binary_outputs is True and decoded.request_outputs is None
    assert decoded.inputs[0].as_numpy().tolist() == [[1.0, 2.0]]
    assert {"use_binary_outputs", "requested_outputs"} <= set(parameters(InferResponse.__init__))
    answer = InferResponse(
        response_id="1",
        model_name="adder",
        model_version="7",
        use_binary_outputs=True,
        infer_outputs=[InferOutput("sum", [1], "FP64", [3.0])],
    ).to_grpc()
    assert answer.model_version == "7" and np.frombuffer(answer.raw_output_contents[0]).tolist() == [3.0]


@pytest.mark.parametrize("raw", [True, False])
def test_grpc_response_is_the_message_kserves_to_grpc_builds(raw):
    """The servicer encodes answers itself (cheaper per request); a client must not see the difference."""

    def answer(outputs: list[InferOutput]) -> InferResponse:
        return InferResponse(
            response_id="r-1",
            model_name="adder",
            model_version="7",
            parameters={"note": "n"},
            use_binary_outputs=raw,
            infer_outputs=outputs,
        )

    def outputs() -> list[InferOutput]:
        return [
            InferOutput("sum", [3], "FP64", [0.5, 2.0, 1e300]),
            InferOutput("big", [3], "BOOL", [False, True, True]),
            InferOutput("count", [3], "INT64", [1, -2, 3]),
        ]

    ours = kserve_adapter.grpc_response(answer(outputs()), raw=raw)
    kserves = answer(outputs()).to_grpc()
    for tensor in kserves.outputs:  # KServe tags raw outputs with REST's binary extension size; gRPC has no use for it
        tensor.parameters.pop("binary_data_size", None)
    assert ours == kserves
    assert bool(ours.raw_output_contents) == raw


def test_grpc_response_flattens_a_two_dimensional_answer_and_refuses_unknown_datatypes():
    rows = [[1.0, 2.0], [3.0, 4.0]]
    contents = kserve_adapter.grpc_response(
        InferResponse("r", "m", [InferOutput("xy", [2, 2], "FP64", rows)], model_version="1"), raw=False
    )
    assert list(contents.outputs[0].shape) == [2, 2]
    assert list(contents.outputs[0].contents.fp64_contents) == [1.0, 2.0, 3.0, 4.0]
    raw = kserve_adapter.grpc_response(
        InferResponse("r", "m", [InferOutput("xy", [2, 2], "FP64", rows)], model_version="1"), raw=True
    )
    assert np.frombuffer(raw.raw_output_contents[0]).reshape(2, 2).tolist() == rows
    with pytest.raises(TypeError, match="datatype BYTES"):
        kserve_adapter.grpc_response(InferResponse("r", "m", [InferOutput("s", [1], "BYTES", ["a"])]), raw=False)
