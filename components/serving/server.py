"""The local stand-in for a KServe InferenceService: real `kserve.ModelServer`, models from S3.

Each model follows its serving record in the object store (`models/<name>/serving.json`).
Deploying a version means writing that record and calling the V2 model repository endpoint
`POST /v2/repository/models/<name>/load`; the new version is loaded beside the old one and
swapped in by one assignment, so requests in flight finish on the version they started with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model, ModelServer
from kserve.errors import ModelNotReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from prometheus_client import Counter

from components.serving.envelope import Envelope
from components.serving.payloads import parse_v1, parse_v2
from components.serving.traffic_log import TrafficLogger, TrafficRecord
from components.store.model_registry import CARD_FILE, MODEL_BUCKET, download_model, serving_version
from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]

ROWS = Counter("fuseml_predicted_rows", "Rows predicted", ["model"])
ROWS_OUTSIDE = Counter("fuseml_out_of_envelope_rows", "Rows outside the model's training envelope", ["model"])


@dataclass(frozen=True)
class ServedModelSpec:
    """What the server needs to know about one learning problem's model."""

    name: str
    input_name: str
    input_columns: tuple[str, ...]
    output_name: str
    output_columns: tuple[str, ...]
    load: Callable[[Path], Predictor]


@dataclass(frozen=True)
class ActiveVersion:
    version: str
    predict: Predictor
    envelope: Envelope | None


def sum_spec() -> ServedModelSpec:
    from components.sum.model import load_predictor

    return ServedModelSpec("sum", "pairs", ("x", "y"), "sum", ("sum",), load_predictor)


def three_body_spec() -> ServedModelSpec:
    from components.three_body.model import load_predictor

    return ServedModelSpec("three-body", "queries", ("t", "x2x", "x2y"), "positions",
                           ("x1x", "x1y", "x2x", "x2y", "x3x", "x3y"), load_predictor)


def registered_specs() -> dict[str, ServedModelSpec]:
    specs = [sum_spec(), three_body_spec()]
    return {spec.name: spec for spec in specs}


class StoreBackedModel(Model):
    def __init__(self, spec: ServedModelSpec, store: ObjectStore, cache_dir: Path,
                 traffic: TrafficLogger | None = None) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self.store = store
        self.cache_dir = cache_dir / spec.name
        self.traffic = traffic
        self.active: ActiveVersion | None = None

    def load(self) -> bool:
        """Load the version the serving record names; a no-op when it is already active."""
        version = serving_version(self.store, self.name)
        if version is None:
            log.info("model %s: nothing deployed yet", self.name)
            return self.ready
        if self.active and self.active.version == version:
            return True
        path = download_model(self.store, self.name, version, self.cache_dir)
        predict = self.spec.load(path)
        card = json.loads((path / CARD_FILE).read_text())
        self.active = ActiveVersion(version, predict, Envelope.from_card(card))
        self.ready = True
        log.info("model %s: serving version %s", self.name, version)
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": self.spec.input_name, "datatype": "FP32", "shape": [-1, len(self.spec.input_columns)]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        width = len(self.spec.output_columns)
        shape = [-1] if width == 1 else [-1, width]
        return [{"name": self.spec.output_name, "datatype": "FP64", "shape": shape},
                {"name": "out_of_envelope", "datatype": "BOOL", "shape": [-1]}]

    def _answer(self, active: ActiveVersion, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predict, flag rows outside the training envelope, count them and log the traffic."""
        outputs = active.predict(inputs)
        flagged = active.envelope.outside(inputs) if active.envelope else np.zeros(len(inputs), dtype=bool)
        ROWS.labels(self.name).inc(len(inputs))
        ROWS_OUTSIDE.labels(self.name).inc(int(flagged.sum()))
        if self.traffic:
            self.traffic.log(TrafficRecord(self.name, active.version, inputs.tolist(), outputs.tolist(),
                                           flagged.tolist()))
        return outputs, flagged

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Any:
        active = self.active  # read once: the whole request is answered by one version
        if active is None:
            raise ModelNotReady(self.name)
        width = len(self.spec.input_columns)
        if isinstance(payload, InferRequest):
            outputs, flagged = self._answer(active, parse_v2(payload, self.spec.input_name, width))
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),
                model_name=self.name,
                model_version=active.version,
                infer_outputs=[InferOutput(self.spec.output_name, list(outputs.shape), "FP64", outputs.tolist()),
                               InferOutput("out_of_envelope", [len(flagged)], "BOOL", flagged.tolist())],
            )
        outputs, flagged = self._answer(active, parse_v1(payload, width))
        return {"predictions": outputs.tolist(), "model_version": active.version,
                "out_of_envelope": flagged.tolist()}


class StoreModelRepository(ModelRepository):
    """Backs the V2 repository extension: `load` re-reads the serving record from the store."""

    async def load(self, name: str) -> bool:
        model = self.get_model(name)
        if not isinstance(model, StoreBackedModel):
            raise KeyError(f"unknown model {name!r}")
        return await asyncio.to_thread(model.load)


class VersionedDataPlane(DataPlane):
    """V2 model metadata that names the served version, as the Open Inference Protocol allows."""

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        metadata = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        if isinstance(model, StoreBackedModel) and model.active:
            metadata["versions"] = [model.active.version]
        return metadata


def build_server(models: list[StoreBackedModel], http_port: int) -> ModelServer:
    repository = StoreModelRepository()
    for model in models:
        try:
            model.load()
        except Exception:  # a broken store or version must not keep the others from serving
            log.exception("model %s could not be loaded at start", model.name)
        repository.update(model)
    server = ModelServer(http_port=http_port, registered_models=repository, enable_grpc=False, workers=1)
    server.dataplane = VersionedDataPlane(model_registry=repository)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the project's models from the object store.")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--models", default=",".join(registered_specs()))
    parser.add_argument("--cache-dir", type=Path, default=Path(".local/model-cache"))
    parser.add_argument("--no-traffic-log", action="store_true", help="do not log requests to the store")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    specs = registered_specs()
    unknown = [name for name in args.models.split(",") if name not in specs]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    store = ObjectStore.from_env()
    store.ensure_bucket(MODEL_BUCKET)
    traffic = None if args.no_traffic_log else TrafficLogger(store)
    if traffic:
        traffic.start()
    models = [StoreBackedModel(specs[name], store, args.cache_dir, traffic) for name in args.models.split(",")]
    try:
        build_server(models, args.http_port).start([])
    finally:
        if traffic:
            traffic.stop()


if __name__ == "__main__":
    main()
