"""Log served requests to the object store, like KServe's payload logger, and read them back.

Requests only append to a bounded in-memory buffer; a background thread writes batches to
`s3://inference-logs/<model>/<version>/<UTC time>-<id>.jsonl` every few seconds. When the store
is down the batch is retried on the next flush; when the buffer is full new records are dropped
and counted. Serving never waits for, nor fails because of, logging.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import orjson

from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

LOG_BUCKET = "inference-logs"


@dataclass
class TrafficRecord:
    """One model call's rows. Arrays are kept as they are until the flush writes them: a few
    seconds of records held as Python lists were hundreds of thousands of objects for the
    garbage collector to walk, again and again, while serving."""

    model: str
    version: str
    inputs: np.ndarray | list[list[float]]
    outputs: np.ndarray | list
    flagged: np.ndarray | list[bool]
    time: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))


class TrafficLogger:
    def __init__(self, store: ObjectStore, flush_seconds: float = 2.0, max_records: int = 10_000) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._buffer: deque[TrafficRecord] = deque()
        self._max_records = max_records
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="traffic-logger", daemon=True)
        self._bucket_ready = False

    def start(self) -> None:
        self._thread.start()

    def log(self, record: TrafficRecord) -> None:
        """Never blocks on I/O and never raises into the request."""
        with self._lock:
            if len(self._buffer) >= self._max_records:
                self.dropped += 1
                return
            self._buffer.append(record)

    def flush(self) -> None:
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
        if not batch:
            return
        try:
            if not self._bucket_ready:
                self.store.ensure_bucket(LOG_BUCKET)
                self._bucket_ready = True
            for (model, version), records in _group(batch).items():
                stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                body = b"\n".join(_json_line(r) for r in records)
                self.store.put_bytes(
                    LOG_BUCKET,
                    f"{model}/{version}/{stamp}-{uuid.uuid4().hex[:8]}.jsonl",
                    body,
                    content_type="application/x-ndjson",
                )
            self.written += len(batch)
        except Exception as error:  # put the batch back, within the bound, and try again later
            log.warning("traffic log flush failed, will retry: %s", error)
            with self._lock:
                room = self._max_records - len(self._buffer)
                self.dropped += max(0, len(batch) - room)
                self._buffer.extendleft(reversed(batch[:room]))

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
        self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def _json_line(record: TrafficRecord) -> bytes:
    return orjson.dumps(record.__dict__, option=orjson.OPT_SERIALIZE_NUMPY, default=_as_list)


def _as_list(value: object) -> list:
    """What orjson's numpy support leaves to us: arrays that are not C-contiguous."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _group(records: list[TrafficRecord]) -> dict[tuple[str, str], list[TrafficRecord]]:
    groups: dict[tuple[str, str], list[TrafficRecord]] = {}
    for record in records:
        groups.setdefault((record.model, record.version), []).append(record)
    return groups


def read_traffic(store: ObjectStore, model: str, version: str, since: dt.datetime | None = None) -> np.ndarray:
    """All logged input rows of one served version (optionally only records newer than `since`)."""
    store.ensure_bucket(LOG_BUCKET)
    rows: list[list[float]] = []
    for key in sorted(store.list_keys(LOG_BUCKET, f"{model}/{version}/")):
        for line in store.get_bytes(LOG_BUCKET, key).decode().splitlines():
            record = json.loads(line)
            if since is None or dt.datetime.fromisoformat(record["time"]) >= since:
                rows.extend(record["inputs"])
    return np.asarray(rows, dtype=np.float64)
