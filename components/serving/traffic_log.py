"""Log served requests to the object store, like KServe's payload logger, and read them back.

Requests only append to a bounded in-memory buffer; a background thread writes batches to
`s3://inference-logs/<model>/<version>/<UTC time>-<id>.jsonl` every few seconds. When the store
is down the batch is retried on the next flush; when the buffer is full new records are dropped
and counted. Serving never waits for, nor fails because of, logging. A write that timed out may
still have landed, so a retry can store a record twice: each record carries an id, and the
readers keep the first copy.

`log` turns the record into its JSON line at once, on the caller's thread (in the server, the
event loop, right after the model call it logs: a fraction of a millisecond per batch). The
writing thread shares the server's GIL, and when it did the serializing (under 100-row requests
at full load, 15 MB and some 50 ms of CPU per flush) the event loop waited for the GIL at every
hand-off: on a busy core a wait could last tens of milliseconds, and that set the server's p99
latency. Now the writer only joins lines into objects of at most `PART_BYTES`, each joined in
about a millisecond, and uploads them (hashing and sending release the GIL).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson

from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

LOG_BUCKET = "inference-logs"
PART_BYTES = 2 << 20  # the largest object a flush writes (unless one record is larger)


@dataclass
class TrafficRecord:
    """One model call's rows (arrays or lists), logged as one JSON line."""

    model: str
    version: str
    inputs: np.ndarray | list[list[float]]
    outputs: np.ndarray | list
    flagged: np.ndarray | list[bool]
    time: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class TrafficLogger:
    def __init__(self, store: ObjectStore, flush_seconds: float = 2.0, max_records: int = 10_000) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        # (model, version, JSON line): bytes, which the garbage collector never walks
        self._buffer: deque[tuple[str, str, bytes]] = deque()
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
        """Never blocks on I/O and never raises into the request; serializes the record now."""
        if len(self._buffer) >= self._max_records:  # checked again under the lock; this saves the work
            self.dropped += 1
            return
        try:
            line = _json_line(record)
        except Exception:
            log.warning("traffic record of %s %s could not be serialized", record.model, record.version, exc_info=True)
            self.dropped += 1
            return
        with self._lock:
            if len(self._buffer) >= self._max_records:
                self.dropped += 1
                return
            self._buffer.append((record.model, record.version, line))

    def flush(self) -> None:
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
        if not batch:
            return
        written: set[int] = set()  # indexes into `batch` of the lines in the store
        try:
            if not self._bucket_ready:
                self.store.ensure_bucket(LOG_BUCKET)
                self._bucket_ready = True
            for (model, version), indexes in _group(batch).items():
                for part in _parts([len(batch[i][2]) + 1 for i in indexes], PART_BYTES):
                    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                    self.store.put_bytes(
                        LOG_BUCKET,
                        f"{model}/{version}/{stamp}-{uuid.uuid4().hex[:8]}.jsonl",
                        b"\n".join(batch[indexes[i]][2] for i in part),
                        content_type="application/x-ndjson",
                    )
                    written.update(indexes[i] for i in part)
                    self.written += len(part)
        except Exception as error:  # put back what was not written, within the bound, and try again later
            log.warning("traffic log flush failed, will retry: %s", error)
            unwritten = [entry for i, entry in enumerate(batch) if i not in written]
            with self._lock:
                room = self._max_records - len(self._buffer)
                self.dropped += max(0, len(unwritten) - room)
                self._buffer.extendleft(reversed(unwritten[:room]))

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


def _group(batch: list[tuple[str, str, bytes]]) -> dict[tuple[str, str], list[int]]:
    """Indexes of the lines of each (model, version), in order."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (model, version, _) in enumerate(batch):
        groups.setdefault((model, version), []).append(i)
    return groups


def _parts(sizes: list[int], part_bytes: int) -> Iterator[range]:
    """Consecutive runs of items whose sizes add up to about `part_bytes` (an item larger than that
    is a run of its own): the join and the copy of one object each hold the GIL for about a
    millisecond, not tens."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if total and total + size > part_bytes:
            yield range(start, i)
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


def read_records(store: ObjectStore, model: str, version: str, since: dt.datetime | None = None) -> Iterator[dict]:
    """One served version's logged records in the order written, each once (optionally only
    those newer than `since`)."""
    store.ensure_bucket(LOG_BUCKET)
    seen: set[str] = set()
    for key in sorted(store.list_keys(LOG_BUCKET, f"{model}/{version}/")):
        for line in store.get_bytes(LOG_BUCKET, key).decode().splitlines():
            record = json.loads(line)
            if since is not None and dt.datetime.fromisoformat(record["time"]) < since:
                continue
            record_id = record.get("id")  # None in records logged before records had ids
            if record_id is not None:
                if record_id in seen:
                    continue
                seen.add(record_id)
            yield record


def read_traffic(store: ObjectStore, model: str, version: str, since: dt.datetime | None = None) -> np.ndarray:
    """All logged input rows of one served version (optionally only records newer than `since`)."""
    rows = [row for record in read_records(store, model, version, since) for row in record["inputs"]]
    return np.asarray(rows, dtype=np.float64)
