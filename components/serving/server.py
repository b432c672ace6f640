"""The local stand-in for a KServe InferenceService: KServe's server, models from S3.

V1 and V2 over REST (8080) and the Open Inference Protocol over gRPC (8081), on 127.0.0.1 unless
told otherwise; what it takes from KServe beyond `kserve.Model` is in `kserve_adapter`.

Each model follows its serving record in the object store (`models/<name>/serving.json`).
Deploying a version means writing that record and calling the V2 model repository endpoint
`POST /v2/repository/models/<name>/load`; the new version is loaded beside the old one and
swapped in by one assignment, so requests in flight finish on the version they started with.
A cluster predictor is pinned instead (`--model-version NAME=VERSION`): it serves the version
its InferenceService names, whatever the record says, so a restarted pod serves the same one.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import Counter

from components.contract import Envelope, ModelCard, ModelSpec, Predictor
from components.registry import model_specs
from components.serving import guards, kserve_adapter, lite
from components.serving.batching import MicroBatcher
from components.serving.checks import rows_v1, rows_v2
from components.serving.traffic_log import TrafficLogger
from components.store.model_registry import CARD_FILE, MODEL_BUCKET, download_model, serving_version
from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

ROWS = Counter("fuseml_predicted_rows", "Rows predicted", ["model"])
ROWS_OUTSIDE = Counter("fuseml_out_of_envelope_rows", "Rows outside the model's training envelope", ["model"])


@dataclass(frozen=True)
class ActiveVersion:
    version: str
    predict: Predictor
    envelope: Envelope | None


class StoreBackedModel(Model):
    def __init__(
        self,
        spec: ModelSpec,
        store: ObjectStore,
        cache_dir: Path,
        traffic: TrafficLogger | None = None,
        pinned_version: str | None = None,
    ) -> None:
        super().__init__(spec.name)
        self.pinned_version = pinned_version
        self.spec = spec
        self.store = store
        self.cache_dir = cache_dir / spec.name
        self.traffic = traffic
        self.active: ActiveVersion | None = None
        self.batcher: MicroBatcher | None = None  # set by build_server unless batching is off

    def load(self) -> bool:
        """Load the pinned version, else the one the serving record names; a no-op when it is already active."""
        version = self.pinned_version or serving_version(self.store, self.name)
        if version is None:
            log.info("model %s: nothing deployed yet", self.name)
            return self.active is not None
        if self.active and self.active.version == version:
            return True
        path = download_model(self.store, self.name, version, self.cache_dir)
        card = ModelCard.from_dict(json.loads((path / CARD_FILE).read_text()))
        predict = lite.serving_predictor(path, self.spec.load(path), card.envelope)
        self.active = ActiveVersion(version, predict, card.envelope)
        self.ready = True
        runtime = "LiteRT" if isinstance(predict, lite.LitePredictor) else "TensorFlow"
        log.info("model %s: serving version %s (%s)", self.name, version, runtime)
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": self.spec.input_name, "datatype": "FP32", "shape": [-1, len(self.spec.input_columns)]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        width = len(self.spec.output_columns)
        shape = [-1] if width == 1 else [-1, width]
        return [
            {"name": self.spec.output_name, "datatype": "FP64", "shape": shape},
            {"name": "out_of_envelope", "datatype": "BOOL", "shape": [-1]},
        ]

    async def _answer(self, active: ActiveVersion, inputs: np.ndarray) -> Answer:
        """Answer one request's rows: alone, or (when batching is on) in one model call together
        with the rows of requests that arrived meanwhile."""
        answer_rows = self._rows_answerer(active)
        batcher = self.batcher
        outputs, flagged, finite = await batcher.predict(answer_rows, inputs) if batcher else answer_rows(inputs)
        if not all(finite):
            rows = [row for row, ok in enumerate(finite) if not ok]
            listed = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
            raise InvalidInput(
                f"the model's answer for row(s) {listed} is not a finite number: the inputs are too large for it"
            )
        shape = [len(outputs)] if len(self.spec.output_columns) == 1 else [len(outputs), len(self.spec.output_columns)]
        return Answer(outputs, shape, flagged)

    def _rows_answerer(self, active: ActiveVersion) -> Callable[[np.ndarray], tuple[list, list, list]]:
        """For one version: rows -> (outputs, out-of-envelope flags, finite-answer flags), which
        also counts the rows and logs them, once per batch; made once per version. All three are
        lists: each request gets slices of them, and testing a short list costs less than a
        numpy call."""
        cached = self.__dict__.get("_answerer")
        if cached is not None and cached[0] is active:
            return cached[1]
        rows_total, rows_outside = ROWS.labels(self.name), ROWS_OUTSIDE.labels(self.name)
        one_column = len(self.spec.output_columns) == 1

        def answer_rows(inputs: np.ndarray) -> tuple[list, list, list]:
            outputs: np.ndarray = np.asarray(active.predict(inputs), dtype=np.float64).reshape(len(inputs), -1)
            finite = np.asarray(np.isfinite(outputs).all(axis=1))
            if one_column:
                outputs = outputs.reshape(-1)
            flagged = active.envelope.outside(inputs) if active.envelope else np.zeros(len(inputs), dtype=bool)
            logged_inputs, logged_outputs, logged_flags = (
                (inputs, outputs, flagged) if finite.all() else (inputs[finite], outputs[finite], flagged[finite])
            )
            rows_total.inc(len(logged_inputs))
            rows_outside.inc(int(logged_flags.sum()))
            if self.traffic:
                self.traffic.log(self.name, active.version, logged_inputs, logged_outputs, logged_flags)
            return outputs.tolist(), flagged.tolist(), finite.tolist()

        self._answerer = (active, answer_rows)
        return answer_rows

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Any:
        active = self.active  # read once: the whole request is answered by one version
        if active is None:
            raise ModelNotReady(self.name)
        width = len(self.spec.input_columns)
        if isinstance(payload, InferRequest):
            wanted = _requested_outputs(payload, (self.spec.output_name, "out_of_envelope"))
            answer = await self._answer(active, _checked(lambda: rows_v2(payload, self.spec.input_name, width)))
            outputs = [
                InferOutput(self.spec.output_name, answer.shape, "FP64", answer.outputs),
                InferOutput("out_of_envelope", [len(answer.flagged)], "BOOL", answer.flagged),
            ]
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),
                model_name=self.name,
                model_version=active.version,
                infer_outputs=[o for o in outputs if wanted is None or o.name in wanted],
                use_binary_outputs=payload.use_binary_outputs,  # V2's binary tensor extension, or gRPC raw
                requested_outputs=payload.request_outputs,
            )
        answer = await self._answer(active, _checked(lambda: rows_v1(payload, width)))
        return {"predictions": answer.outputs, "model_version": active.version, "out_of_envelope": answer.flagged}


@dataclass(frozen=True)
class Answer:
    outputs: list
    shape: list[int]
    flagged: list[bool]


def _checked(parse: Callable[[], np.ndarray]) -> np.ndarray:
    """The request's rows; whatever goes wrong reading a client's input is that client's 400."""
    try:
        return parse()
    except InvalidInput:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError) as error:
        log.warning("request refused by an unexpected check failure", exc_info=True)
        raise InvalidInput(f"malformed request: {type(error).__name__}: {str(error)[:200]}") from None


def _requested_outputs(request: InferRequest, available: tuple[str, ...]) -> set[str] | None:
    """The V2 outputs asked for (all when none are named); an unknown name is a 400."""
    if not request.request_outputs:
        return None
    names = {output.name for output in request.request_outputs}
    unknown = sorted(str(name) for name in names - set(available))
    if unknown:
        raise InvalidInput(f"unknown output(s) {', '.join(unknown)}: this model has {', '.join(available)}")
    return names


def settle_heap() -> None:
    """Collect, then freeze what is alive (libraries, loaded models) out of the cyclic GC's sight.

    With TensorFlow loaded, a full collection walks hundreds of thousands of objects and stalls
    every request in flight: it set the p99 latency under load. Frozen objects are
    skipped. The collection before freezing frees a replaced version's reference cycles.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    # Requests allocate many short-lived lists (a parsed JSON body is a list per row): with the
    # default thresholds the older generations were collected every few hundred requests.
    # Collect the young often, the old rarely.
    gc.set_threshold(20_000, 20, 20)


def limit_model_threads(threads: int) -> None:
    """Run each model call on `threads` TensorFlow threads (before any model is loaded).

    The served networks are small: a call's cost is mostly fixed overhead whatever its rows, and
    TensorFlow's default pools (a thread per core) made each call cost more CPU than one thread
    does, CPU the event loop needs to read requests. Batching, not intra-op threads, is what
    gives throughput here.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def build_server(
    models: list[StoreBackedModel],
    max_body_bytes: int = guards.DEFAULT_MAX_BODY_BYTES,
    batching: bool = True,
    repository_api: bool = True,
) -> kserve_adapter.Serving:
    """KServe's server parts for the models, with request limits and (unless off) micro-batching."""
    for model in models:
        try:
            model.load()
        except Exception:  # a broken store or version must not keep the others from serving
            log.exception("model %s could not be loaded at start", model.name)
        model.batcher = MicroBatcher() if batching else None
    by_name = {model.name: model for model in models}

    def served_version(name: str) -> str | None:
        model = by_name.get(name)
        return model.active.version if model and model.active else None

    serving = kserve_adapter.assemble(models, served_version, after_load=settle_heap)
    guards.install(kserve_adapter.rest_app(), max_body_bytes, served_version, repository_api)
    settle_heap()
    return serving


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the project's models from the object store.")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on, for REST and gRPC (default: %(default)s; 0.0.0.0 in a pod)",
    )
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=8081,
        help="the Open Inference Protocol over gRPC (default: %(default)s; 0: off)",
    )
    parser.add_argument(
        "--no-repository-api",
        action="store_true",
        help="refuse the V2 repository calls that load and unload versions (REST and gRPC)",
    )
    parser.add_argument("--models", default=",".join(model_specs()))
    parser.add_argument(
        "--model-version",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="serve this version of the model, not the one its serving record names "
        "(what an InferenceService pins; repeat per model)",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(".local/model-cache"))
    parser.add_argument("--no-traffic-log", action="store_true", help="do not log requests to the store")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=guards.DEFAULT_MAX_BODY_BYTES,
        help="refuse larger request bodies with a 413, and larger gRPC messages with "
        "RESOURCE_EXHAUSTED (default: %(default)s)",
    )
    parser.add_argument(
        "--model-threads", type=int, default=1, help="TensorFlow threads per model call (default: %(default)s)"
    )
    parser.add_argument(
        "--no-batching",
        action="store_true",
        help="one model call per request instead of batching concurrent requests' rows",
    )
    args = parser.parse_args(argv)
    if args.max_body_bytes < 1:
        parser.error("--max-body-bytes must be positive")
    if args.model_threads < 1:
        parser.error("--model-threads must be positive")
    if not 0 <= args.grpc_port < 65536 or args.grpc_port == args.http_port:
        parser.error("--grpc-port must be a port number other than --http-port, or 0 for no gRPC")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    specs = model_specs()
    unknown = [name for name in args.models.split(",") if name not in specs]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    pinned = dict(pair.partition("=")[::2] for pair in args.model_version)
    if any(not version for version in pinned.values()) or len(pinned) != len(args.model_version):
        parser.error("--model-version takes NAME=VERSION, once per model")
    stray = sorted(set(pinned) - set(args.models.split(",")))
    if stray:
        parser.error(f"--model-version names model(s) not served: {', '.join(stray)}")
    limit_model_threads(args.model_threads)
    store = ObjectStore.from_env()
    store.ensure_bucket(MODEL_BUCKET)
    traffic = None if args.no_traffic_log else TrafficLogger()
    if traffic:
        # the event loop waits this long at most (not Python's 5 ms) for the GIL the log's feeder holds
        sys.setswitchinterval(0.0005)
        traffic.start()
    models = [
        StoreBackedModel(specs[name], store, args.cache_dir, traffic, pinned.get(name))
        for name in args.models.split(",")
    ]
    try:
        serving = build_server(
            models, args.max_body_bytes, batching=not args.no_batching, repository_api=not args.no_repository_api
        )
        kserve_adapter.run(
            serving,
            kserve_adapter.Listen(
                host=args.host,
                http_port=args.http_port,
                grpc_port=args.grpc_port or None,
                max_message_bytes=args.max_body_bytes,
                repository_api=not args.no_repository_api,
            ),
        )
    finally:
        if traffic:
            traffic.stop()


if __name__ == "__main__":
    main()
