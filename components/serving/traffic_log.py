"""Log served requests to the object store, like KServe's payload logger, and read them back.

Requests only append to a bounded in-memory buffer; a background thread writes batches to
`s3://inference-logs/<model>/<version>/<UTC time>-<id>.jsonl` every few seconds. When the store
is down the batch is retried on the next flush; when the buffer is full new records are dropped
and counted (`fuseml_traffic_records_total{outcome="dropped"}` on /metrics). Serving never waits
for, nor fails because of, logging. A write that timed out may still have landed, so a retry can
store a record twice: each record carries an id, and the readers keep the first copy.

`log` turns the record into its JSON line at once, on the caller's thread (in the server, the
event loop, right after the model call it logs: a fraction of a millisecond per batch); the
writing thread only joins lines into objects of at most `PART_BYTES` and uploads them. That
thread still shares the server's core: under 100-row requests at full load a flush is some 50 ms
of joining, hashing (SigV4) and sending, and every request in flight meanwhile took a few
milliseconds longer, which set the server's p99 latency. So on Linux the writer runs under
SCHED_IDLE, on CPU time serving leaves over. When serving leaves none for long, the buffer
fills; past half of its bound a second writer at normal priority flushes it, so that records are
dropped only when the store cannot keep up, never merely because serving is busy.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
from prometheus_client import Counter

from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

LOG_BUCKET = "inference-logs"
PART_BYTES = 2 << 20  # the largest object a flush writes (unless one record is larger)
MAX_BUFFER_BYTES = 64 << 20  # JSON lines held for writing; past half of it, flushes stop yielding
RECORDS = Counter("fuseml_traffic_records", "Traffic log records, by what became of them", ["outcome"])


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
    def __init__(self, store: ObjectStore, flush_seconds: float = 2.0, max_bytes: int = MAX_BUFFER_BYTES) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        # (model, version, JSON line): bytes, which the garbage collector never walks
        self._buffer: deque[tuple[str, str, bytes]] = deque()
        self._buffered_bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._urgent = threading.Event()  # the buffer is past half full
        self.dropped = 0
        self.written = 0
        self._threads = [
            threading.Thread(target=self._run, name="traffic-logger", daemon=True),
            threading.Thread(target=self._run_urgent, name="traffic-logger-urgent", daemon=True),
        ]
        self._bucket_ready = False

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def log(self, record: TrafficRecord) -> None:
        """Never blocks on I/O and never raises into the request; serializes the record now."""
        if self._buffered_bytes >= self._max_bytes:  # checked again under the lock; this saves the work
            self._count_dropped(1)
            return
        try:
            line = _json_line(record)
        except Exception:
            log.warning("traffic record of %s %s could not be serialized", record.model, record.version, exc_info=True)
            self._count_dropped(1)
            return
        with self._lock:
            full = self._buffered_bytes + len(line) > self._max_bytes
            if not full:
                self._buffer.append((record.model, record.version, line))
                self._buffered_bytes += len(line)
                if self._buffered_bytes > self._max_bytes // 2:
                    self._urgent.set()
        if full:
            self._count_dropped(1)

    def flush(self) -> bool:
        """Write what is buffered; False when the store refused some of it (kept for the next flush)."""
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
        if not batch:
            return True
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
                    with self._lock:
                        self.written += len(part)
                    RECORDS.labels("written").inc(len(part))
            return True
        except Exception as error:  # put back what was not written, within the bound, and try again later
            log.warning("traffic log flush failed, will retry: %s", error)
            unwritten = [entry for i, entry in enumerate(batch) if i not in written]
            with self._lock:
                kept = 0
                for entry in unwritten:
                    if self._buffered_bytes + len(entry[2]) > self._max_bytes:
                        break
                    self._buffered_bytes += len(entry[2])
                    kept += 1
                self._buffer.extendleft(reversed(unwritten[:kept]))
            self._count_dropped(len(unwritten) - kept)
            return False

    def _count_dropped(self, records: int) -> None:
        with self._lock:
            self.dropped += records
        RECORDS.labels("dropped").inc(records)

    def _run(self) -> None:
        _yield_to_serving()
        while not self._stop.wait(self.flush_seconds):
            self.flush()
        self.flush()

    def _run_urgent(self) -> None:
        """At normal priority: flushes when the buffer is past half full, then waits a flush
        interval if the store refused it, so that a store that is down is not hammered."""
        while True:
            self._urgent.wait()
            if self._stop.is_set():
                return
            self._urgent.clear()
            if not self.flush():
                self._stop.wait(self.flush_seconds)

    def stop(self) -> None:
        self._stop.set()
        self._urgent.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)


def _yield_to_serving() -> None:
    """Run the calling thread under SCHED_IDLE (Linux; elsewhere, or where refused, it stays as it is)."""
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is None:
        return
    try:
        os.sched_setscheduler(threading.get_native_id(), idle, os.sched_param(0))
    except OSError as error:
        log.info("traffic log writer keeps normal priority: %s", error)


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
