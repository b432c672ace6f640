"""A served version converted to LiteRT (TensorFlow Lite), checked against its SavedModel first.

A SavedModel signature call costs 0.3-0.5 ms of TensorFlow dispatch whatever its rows, which
is why the server batches: under gRPC, the batch windows long enough to amortize that cost set
the p99 latency. LiteRT's interpreter runs the same network in microseconds. The validated
artifact stays the SavedModel: the converted model serves only if it answers like the
SavedModel on rows drawn from the version's training envelope (float32 rounding apart);
otherwise the SavedModel serves, and the log says why. Evaluation and champion checks keep
loading the SavedModel.

An interpreter is not thread-safe: the server calls it only from its event loop's thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from components.contract import Envelope, Predictor

log = logging.getLogger(__name__)

PROBE_ROWS = 256
TOLERANCE = 1e-4  # of the largest answer on the probe rows: float32 rounding is ~1e-7 of it


class LitePredictor:
    """[n, k] rows in, float64 [n, m] out, through a LiteRT interpreter sized per call."""

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model, num_threads=1)
        (self._input,) = (detail["index"] for detail in self._interpreter.get_input_details())
        (self._output,) = (detail["index"] for detail in self._interpreter.get_output_details())
        self._shape: tuple[int, ...] = ()

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        if inputs.shape != self._shape:  # resizing costs microseconds, a fixed shape would pad
            self._interpreter.resize_tensor_input(self._input, inputs.shape)
            self._interpreter.allocate_tensors()
            self._shape = inputs.shape
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(inputs, dtype=np.float32))
        self._interpreter.invoke()
        answer: np.ndarray = self._interpreter.get_tensor(self._output).astype(np.float64)
        return answer


def convert(path: Path) -> bytes:
    """The SavedModel at `path` as a LiteRT flatbuffer (TensorFlow's own converter)."""
    import tensorflow as tf

    model: bytes = tf.lite.TFLiteConverter.from_saved_model(str(path)).convert()
    return model


def probe_rows(envelope: Envelope, rows: int = PROBE_ROWS) -> np.ndarray:
    """Rows spread over the envelope's box, the same ones every time."""
    low, high = np.asarray(envelope.low), np.asarray(envelope.high)
    return np.random.default_rng(0).uniform(low, high, (rows, len(low)))


def disagreement(candidate: Predictor, reference: Predictor, rows: np.ndarray) -> str | None:
    """Why `candidate` may not stand in for `reference` on `rows`, or None when it may."""
    expected = np.asarray(reference(rows), dtype=np.float64).reshape(len(rows), -1)
    answered = np.asarray(candidate(rows), dtype=np.float64).reshape(len(rows), -1)
    if answered.shape != expected.shape:
        return f"it answers shape {answered.shape}, the SavedModel {expected.shape}"
    worst = float(np.max(np.abs(answered - expected)))
    allowed = TOLERANCE * max(1.0, float(np.max(np.abs(expected))))
    if not worst <= allowed:  # also when an answer is not a number
        return f"its answers differ from the SavedModel's by up to {worst:.3g} (allowed {allowed:.3g})"
    return None


def serving_predictor(path: Path, reference: Predictor, envelope: Envelope | None) -> Predictor:
    """The converted model when it answers like `reference` (the SavedModel at `path`), else `reference`."""
    if envelope is None:
        log.warning("%s: no envelope to check a LiteRT conversion on; serving the SavedModel", path)
        return reference
    try:
        candidate = LitePredictor(convert(path))
        problem = disagreement(candidate, reference, probe_rows(envelope))
    except Exception as error:  # a network LiteRT cannot run still serves, through TensorFlow
        problem = f"{type(error).__name__}: {error}"
    if problem:
        log.warning("%s: serving the SavedModel, not its LiteRT conversion: %s", path, problem)
        return reference
    return candidate
