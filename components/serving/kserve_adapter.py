"""Everything the server takes from KServe beyond its documented extension points.

Documented, and used elsewhere: `kserve.Model`, `kserve.errors`, the V2 types of
`kserve.protocol.infer_type` (`InferRequest`, `InferResponse`, `InferOutput`) and middleware on
the REST app. Everything else KServe offers only as internals, so it lives here, and
components/serving/tests/test_kserve_adapter.py fails when a kserve upgrade changes a name or a
signature relied on:

- the data plane (`DataPlane`): the served version in V2 model metadata; malformed bodies,
  which KServe's decoders turn into 500s, as 400s; `infer` calls the model's `predict` without
  `Model.__call__` around it (see `ServingDataPlane.infer`);
- the model repository (`ModelRepository`, `ModelRepositoryExtension`): `load` re-reads the
  serving record; loading an unknown model is a 404;
- the V2 `infer` route registered with its response model (`V2Endpoints`), so that pydantic-core
  serializes answers in one call instead of `jsonable_encoder`'s call per number;
- the REST server (`RESTServer`, `kserve.model_server.app`), started on a chosen host (KServe's
  `ModelServer.start` always binds 0.0.0.0), without KServe's per-request timing log lines;
- the Open Inference Protocol over gRPC (`InferenceServicer` and the generated stubs) on a
  chosen host: KServe's servicer leaves the version out of model metadata, cannot serve the
  repository calls (it reads a result its own extension never returns), and its interceptor logs
  every call; answers are encoded here (`grpc_response`, with KServe's `to_grpc_parameters`, `to_np_dtype`
  and `GRPC_CONTENT_DATATYPE_MAPPINGS`): `InferResponse.to_grpc` refuses nested outputs, and is slow.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import uvloop
from cloudevents.http import CloudEvent
from fastapi import FastAPI
from google.protobuf.message import DecodeError
from kserve import Model, ModelServer
from kserve.constants.constants import GRPC_CONTENT_DATATYPE_MAPPINGS
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotLive, ServerNotReady
from kserve.metrics import PREDICT_HIST_TIME, get_labels
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest, InferResponse, to_grpc_parameters
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceResponse
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from kserve.utils.numpy_codec import to_np_dtype

from components.serving.guards import REPOSITORY_OFF, ClientError

log = logging.getLogger(__name__)

V2_INFER_PATH = "/v2/models/{model_name}/infer"

# model name -> the version it serves, None when it serves none (or is unknown)
ServedVersion = Callable[[str], "str | None"]


def rest_app() -> FastAPI:
    """The FastAPI app KServe's REST server serves: middleware and routes go on it before the start."""
    import kserve.model_server

    return kserve.model_server.app


class StoreModelRepository(ModelRepository):
    """Backs the V2 repository extension: `load` calls the model's own `load` (which re-reads the
    serving record) on a worker thread, so requests are answered meanwhile."""

    async def load(self, name: str) -> bool:
        model = self.get_model(name)
        if model is None:
            raise KeyError(f"unknown model {name!r}")
        return await asyncio.to_thread(model.load)


class ServingDataPlane(DataPlane):
    """KServe's data plane with the served version in V2 metadata and malformed bodies as 400s."""

    def __init__(self, model_registry: ModelRepository, served_version: ServedVersion) -> None:
        super().__init__(model_registry=model_registry)
        self.served_version = served_version

    async def infer(
        self, model_name: str, request: Any, headers: dict[str, str] | None = None
    ) -> tuple[Any, dict[str, str]]:
        """The model's `predict`, timed into KServe's `request_predict_seconds` as KServe times it.

        KServe's `infer` runs the model through `Model.__call__`: preprocess and postprocess hooks,
        which these models leave as they are, two more histograms that time those no-ops, and, for
        a model not ready, a call of its blocking `load` (a read of the store, on the event loop,
        per request; here such a model answers 503 / UNAVAILABLE, as its `predict` says). That
        wrapper cost the gRPC path a seventh of its throughput (100-row requests, 32 clients, one
        core: 1,190 against 1,390 requests/s in an A/B run)."""
        model = self._model_registry.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        with PREDICT_HIST_TIME.labels(**get_labels(model_name)).time():
            return await model.predict(request, headers), {}

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        metadata = await super().model_metadata(model_name)
        version = self.served_version(model_name)
        if version:
            metadata["versions"] = [version]
        return metadata

    def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(body, headers, *args, **kwargs)
        except InvalidInput as error:
            hint = _non_json_number(body, str(error))
            if hint:
                raise InvalidInput(f"{error}: {hint}") from None
            raise
        except Exception as error:  # decoding only reads what the client sent: its failure is a bad request
            raise InvalidInput(
                f"the request body could not be decoded: {type(error).__name__}: {str(error)[:200]}"
            ) from error

    def decode_cloudevent(self, body: Any) -> Any:
        # KServe calls .decode() on a binary CloudEvent's data even when the CloudEvents library
        # has already parsed it (it does when a ce-contenttype header is present).
        if isinstance(body, CloudEvent) and not isinstance(body.get_data(), (bytes, bytearray, str)):
            return body.get_data(), body._get_attributes()
        return super().decode_cloudevent(body)

    async def explain(self, model_name: str, *args: Any, **kwargs: Any) -> Any:
        raise ClientError(404, f"model {model_name} has no explainer: ask /v1/models/{model_name}:predict")


def _non_json_number(body: Any, message: str) -> str | None:
    """Name NaN/Infinity when that is where the JSON parser stopped (Python writes them; JSON has none)."""
    at = re.search(r"\(char (\d+)\)$", message)
    if not at or not isinstance(body, (bytes, bytearray)):
        return None
    token = bytes(body[int(at[1]) : int(at[1]) + 9]).lower()
    for word, name in ((b"nan", "NaN"), (b"infinity", "Infinity")):
        if token.startswith(word):
            return f"{name} is not a JSON number: send only finite numbers"
    return None


class ServingRepositoryExtension(ModelRepositoryExtension):
    """The V2 repository endpoints: an unknown model is a 404, and `after_load` runs after a load."""

    def __init__(self, model_registry: ModelRepository, after_load: Callable[[], None]) -> None:
        super().__init__(model_registry=model_registry)
        self.after_load = after_load

    async def load(self, model_name: str) -> None:
        if self._model_registry.get_model(model_name) is None:
            raise ModelNotFound(model_name)
        await super().load(model_name)
        self.after_load()


@dataclass(frozen=True)
class Listen:
    """Where and how the server listens."""

    host: str
    http_port: int
    grpc_port: int | None  # None: no gRPC
    max_message_bytes: int  # largest gRPC message accepted or sent
    repository_api: bool  # the V2 repository endpoints (load/unload versions) over REST and gRPC


@dataclass
class Serving:
    """The KServe objects one server is made of."""

    server: ModelServer
    dataplane: ServingDataPlane
    repository_extension: ServingRepositoryExtension


def assemble(models: list[Model], served_version: ServedVersion, after_load: Callable[[], None]) -> Serving:
    """A ModelServer (for KServe's process setup: logging, predictor context) with the project's
    data plane and repository, and the V2 `infer` route with its response model on the app."""
    repository = StoreModelRepository()
    for model in models:
        repository.update(model)
    server = ModelServer(registered_models=repository, enable_grpc=False, workers=1)
    dataplane = ServingDataPlane(repository, served_version)
    extension = ServingRepositoryExtension(repository, after_load)
    server.dataplane = dataplane
    server.model_repository_extension = extension
    add_v2_infer_route(rest_app(), dataplane, extension)
    return Serving(server, dataplane, extension)


def add_v2_infer_route(app: FastAPI, dataplane: DataPlane, extension: ModelRepositoryExtension | None) -> None:
    """KServe's own V2 `infer` handler, routed with its response model declared: KServe routes it with
    `response_model=None`, and FastAPI then encodes the answer with `jsonable_encoder`, a Python call
    per number. Added before KServe adds its routes at start, so that this route is the one that
    matches (versioned V2 paths reach it too: the request guard rewrites them to this path).
    Binary-extension answers are `Response`s and pass through untouched."""
    endpoints = V2Endpoints(dataplane, extension)
    app.add_api_route(V2_INFER_PATH, endpoints.infer, methods=["POST"], response_model=InferenceResponse, tags=["V2"])


def run(serving: Serving, listen: Listen) -> None:
    """Serve REST (and gRPC unless off) on one uvloop event loop until the process is told to stop.

    uvloop, not asyncio's own loop: KServe's `--event-loop auto` means "uvloop if available", and
    kserve brings it (uvicorn[standard]), but a one-worker `ModelServer` starts on `asyncio.run`,
    whose loop uvicorn never replaces. grpc.aio runs on any asyncio loop. On uvloop the server
    answered 5-9 % more requests at a lower p99, over HTTP and gRPC (tests/benchmarks'
    setup, A/B in alternating rounds: V1 1 row 2,538 to 2,708 requests/s, gRPC 1 row 1,454 to
    1,578, gRPC 100 rows 1,348 to 1,418)."""
    uvloop.run(_serve(serving, listen))


class _RESTServer(RESTServer):
    """KServe's REST server without its timing middleware, whose only output is two log lines per
    request (wall and CPU time, logger `kserve.trace`): a cost on every request, for numbers the
    Prometheus metrics on /metrics already give. (The other middleware KServe adds here is an
    access-log formatter, only with an `access_log_format`, which this server never sets.)"""

    def _add_middlewares(self, app: FastAPI) -> None:
        pass


async def _serve(serving: Serving, listen: Listen) -> None:
    serving.server.setup_event_loop()  # KServe's loop exception handler and default executor
    log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
    rest = _RESTServer(
        "kserve.model_server:app", serving.dataplane, serving.repository_extension, listen.http_port, workers=1
    )
    rest.config.host = listen.host
    grpc_server = None
    if listen.grpc_port is not None:
        grpc_server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", listen.max_message_bytes),
                ("grpc.max_receive_message_length", listen.max_message_bytes),
            ]
        )
        servicer = ServingServicer(serving.dataplane, serving.repository_extension, listen.repository_api)
        grpc_server.add_generic_rpc_handlers((grpc_handlers(servicer),))
        address = f"[{listen.host}]:{listen.grpc_port}" if ":" in listen.host else f"{listen.host}:{listen.grpc_port}"
        try:
            bound = grpc_server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise OSError(f"gRPC could not listen on {address}: is the port taken? (--grpc-port, 0 for no gRPC)")
        await grpc_server.start()
        log.info("gRPC (Open Inference Protocol) on %s", address)
    try:
        await rest.start()  # returns when uvicorn is told to stop (SIGTERM, SIGINT)
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=5)


# ---------------------------------------------------------------- gRPC

_STATUS_OF_CLIENT_ERROR = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def _grpc_status(error: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status and message a client gets for an exception; None for a server fault."""
    if isinstance(error, InvalidInput):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND, error.reason
    if isinstance(error, (ModelNotReady, ServerNotReady, ServerNotLive)):
        return grpc.StatusCode.UNAVAILABLE, error.reason
    if isinstance(error, ClientError):
        return _STATUS_OF_CLIENT_ERROR.get(error.status, grpc.StatusCode.INVALID_ARGUMENT), error.message
    return None


def _answered(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Each refusal as its gRPC status with a message that names the problem; faults as INTERNAL."""

    async def call(self: ServingServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except Exception as error:
            status = _grpc_status(error)
            if status is None:
                log.exception("gRPC %s failed", method.__name__)
                status = (grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}")
            await context.abort(*status)

    call.__name__ = method.__name__
    return call


def grpc_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's methods, each reading its own request bytes: the generated handlers parse them
    in gRPC's core, where a message that does not parse becomes an UNKNOWN status; here it is an
    INVALID_ARGUMENT that says so."""
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    handlers = {}
    for method in service.methods:
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _parsing(method: Callable[[Any, Any], Awaitable[Any]], message: Any) -> Callable[[bytes, Any], Awaitable[Any]]:
    async def call(data: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = message.FromString(data)
        except DecodeError as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request does not parse as a {message.DESCRIPTOR.full_name}: {error}",
            )
        return await method(request, context)

    return call


class ServingServicer(InferenceServicer):
    """The Open Inference Protocol over gRPC, on the same data plane as REST."""

    def __init__(
        self, dataplane: ServingDataPlane, extension: ServingRepositoryExtension, repository_api: bool
    ) -> None:
        super().__init__(dataplane, extension)
        self.dataplane = dataplane
        self.extension = extension
        self.repository_api = repository_api

    def _check_version(self, name: str, version: str) -> None:
        """A version named in the request must be the one served (as over REST's versioned paths)."""
        if not version:
            return
        served = self.dataplane.served_version(name)
        if served is not None and served != version:
            raise ClientError(404, f"model {name} version {version} is not served: the server serves version {served}")

    @_answered
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return await super().ServerMetadata(request, context)

    @_answered
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return await super().ServerLive(request, context)

    @_answered
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return await super().ServerReady(request, context)

    @_answered
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        self._check_version(request.name, request.version)
        return await super().ModelReady(request, context)

    @_answered
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        self._check_version(request.name, request.version)
        metadata = await self.dataplane.model_metadata(request.name)
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata.get("versions", []),
            platform=metadata["platform"],
            inputs=metadata["inputs"],
            outputs=metadata["outputs"],
        )

    @_answered
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        self._check_version(request.model_name, request.model_version)
        self.validate_grpc_request(request)
        infer_request = InferRequest.from_grpc(request)
        if request.raw_input_contents:
            for tensor in infer_request.inputs:
                tensor.data = _raw_tensor(tensor)
        headers = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        response, _ = await self.dataplane.infer(model_name=request.model_name, request=infer_request, headers=headers)
        if not isinstance(response, InferResponse):
            raise TypeError(f"the model answered a {type(response).__name__}, not an InferResponse")
        return grpc_response(response, raw=infer_request.use_binary_outputs)

    @_answered
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        if not self.repository_api:
            raise ClientError(403, REPOSITORY_OFF)
        await self.extension.load(request.model_name)
        return pb.RepositoryModelLoadResponse(model_name=request.model_name, isLoaded=True)

    @_answered
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        if not self.repository_api:
            raise ClientError(403, REPOSITORY_OFF)
        await self.extension.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse(model_name=request.model_name, isUnloaded=True)


def grpc_response(response: InferResponse, raw: bool) -> pb.ModelInferResponse:
    """The answer as a ModelInferResponse: `raw_output_contents` when the request came raw (as
    Triton answers), flat typed `contents` otherwise. KServe's `to_grpc` builds the same message but
    goes list to numpy to bytes through per-output dictionaries: a sixth of the servicer's time per
    request (107 to 90 us in-process, 100-row requests); and it refuses the nested lists a 2-D
    answer holds."""
    tensors, raw_contents = [], []
    for output in response.outputs:
        field = GRPC_CONTENT_DATATYPE_MAPPINGS.get(output.datatype)
        if field is None or output.datatype == "BYTES":  # encoded through numpy: numbers and booleans only
            raise TypeError(f"output {output.name}: no gRPC contents for datatype {output.datatype}")
        tensor = pb.ModelInferResponse.InferOutputTensor(
            name=output.name,
            datatype=output.datatype,
            shape=output.shape,
            parameters=to_grpc_parameters(output.parameters) if output.parameters else None,
        )
        values = np.asarray(output.data, dtype=to_np_dtype(output.datatype))
        if raw:
            raw_contents.append(values.tobytes())
        else:
            getattr(tensor.contents, field).extend(values.reshape(-1).tolist())
        tensors.append(tensor)
    return pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
        outputs=tensors,
        raw_output_contents=raw_contents,
        parameters=to_grpc_parameters(response.parameters) if response.parameters else None,
    )


def _raw_tensor(tensor: Any) -> np.ndarray:
    """A tensor sent as `raw_input_contents`, as numbers; bytes that do not fit its shape are a 400."""
    try:
        return tensor.as_numpy()
    except InvalidInput:
        raise
    except (ValueError, TypeError) as error:
        raise InvalidInput(
            f"input {tensor.name}: its raw_input_contents do not hold a {tensor.datatype} tensor "
            f"of shape {list(tensor.shape)}: {error}"
        ) from None
