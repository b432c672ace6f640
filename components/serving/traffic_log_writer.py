"""The traffic log's writer: a process of its own that writes logged requests to the object store.

The model server hands it each logged model call's arrays through a pipe, as they are
(`traffic_log.TrafficLogger`), and it writes them in batches, as JSON lines, to
`s3://inference-logs/<model>/<version>/<UTC time>-<id>.jsonl` every few seconds. Serializing
(about a third of a millisecond for a batch of 3,200 rows) and uploading (SigV4 hashing and
sending some 12 MB/s under 100-row requests at full load) are tens of milliseconds of CPU per
flush. Run by a thread of the server, at normal priority that work took those milliseconds from
requests in flight; at low priority (SCHED_IDLE) it was preempted while holding the GIL and the
event loop waited behind it: either way it set the server's p99 latency. In a process of its own
it holds no lock serving needs, and it still runs under SCHED_IDLE, on CPU time serving leaves
over; only reading the pipe (copies) runs at normal priority. When serving leaves no CPU time for
long, the buffer fills; past half of its bound a second thread at normal priority flushes it, so
that records are dropped only when the store cannot keep up, never merely because serving is busy.

When the store is down a batch is retried on the next flush; past the bound new records are
dropped. A write that timed out may still have landed, so a retry can store a record twice:
each record carries an id, and the readers keep the first copy. The writer reports what became
of records on stdout (`written N`, `dropped N`), for the server's /metrics.

Protocol on stdin, until end of file, one logged call after another: a JSON header line
`[model, version, time, [[dtype, shape], ...]]` (time in seconds since the epoch; numpy's dtype
strings, such as "<f4"), then the raw bytes of the inputs, outputs and flags arrays in that order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import orjson

from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

LOG_BUCKET = "inference-logs"
PART_BYTES = 2 << 20  # the largest object a flush writes (unless one record's line is larger)
MAX_BUFFER_BYTES = 64 << 20  # bytes of arrays held for writing; past half of it, flushes stop yielding

Report = Callable[[str, int], None]  # (outcome, records): "written" or "dropped"


@dataclass
class Logged:
    """One model call's rows; its id, given once, lets readers drop a copy a retry wrote again."""

    model: str
    version: str
    time: float  # seconds since the epoch
    inputs: np.ndarray
    outputs: np.ndarray
    flagged: np.ndarray
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def nbytes(self) -> int:
        return self.inputs.nbytes + self.outputs.nbytes + self.flagged.nbytes

    def json_line(self) -> bytes:
        stamp = dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat(timespec="milliseconds")
        return orjson.dumps(
            {
                "model": self.model,
                "version": self.version,
                "inputs": self.inputs,
                "outputs": self.outputs,
                "flagged": self.flagged,
                "time": stamp,
                "id": self.id,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


class BatchWriter:
    """A bounded buffer of logged calls, written to the store as JSON lines in objects of at most
    `PART_BYTES`."""

    def __init__(
        self,
        store: ObjectStore,
        report: Report = lambda outcome, records: None,
        flush_seconds: float = 2.0,
        max_bytes: int = MAX_BUFFER_BYTES,
    ) -> None:
        self.store = store
        self.report = report
        self.flush_seconds = flush_seconds
        self._buffer: deque[Logged] = deque()
        self._buffered_bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._urgent = threading.Event()  # the buffer is past half full
        self.dropped = 0
        self.written = 0
        self._threads = [
            threading.Thread(target=self._run, name="traffic-writer", daemon=True),
            threading.Thread(target=self._run_urgent, name="traffic-writer-urgent", daemon=True),
        ]
        self._bucket_ready = False

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def add(self, logged: Logged) -> None:
        with self._lock:
            full = self._buffered_bytes + logged.nbytes > self._max_bytes
            if not full:
                self._buffer.append(logged)
                self._buffered_bytes += logged.nbytes
                if self._buffered_bytes > self._max_bytes // 2:
                    self._urgent.set()
        if full:
            self._count("dropped", 1)

    def flush(self) -> bool:
        """Write what is buffered; False when the store refused some of it (kept for the next flush)."""
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
        if not batch:
            return True
        written: set[str] = set()  # ids of the records in the store
        try:
            if not self._bucket_ready:
                self.store.ensure_bucket(LOG_BUCKET)
                self._bucket_ready = True
            for (model, version), group in _group(batch).items():
                for part in _parts(group, PART_BYTES):
                    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                    self.store.put_bytes(
                        LOG_BUCKET,
                        f"{model}/{version}/{stamp}-{uuid.uuid4().hex[:8]}.jsonl",
                        b"\n".join(line for _, line in part),
                        content_type="application/x-ndjson",
                    )
                    written.update(logged.id for logged, _ in part)
                    self._count("written", len(part))
            return True
        except Exception as error:  # put back what was not written, within the bound, and try again later
            log.warning("traffic log flush failed, will retry: %s", error)
            unwritten = [logged for logged in batch if logged.id not in written]
            with self._lock:
                kept = 0
                for logged in unwritten:
                    if self._buffered_bytes + logged.nbytes > self._max_bytes:
                        break
                    self._buffered_bytes += logged.nbytes
                    kept += 1
                self._buffer.extendleft(reversed(unwritten[:kept]))
            self._count("dropped", len(unwritten) - kept)
            return False

    def _count(self, outcome: str, records: int) -> None:
        if not records:
            return
        with self._lock:
            if outcome == "written":
                self.written += records
            else:
                self.dropped += records
        self.report(outcome, records)

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


def _group(batch: list[Logged]) -> dict[tuple[str, str], list[Logged]]:
    """The records of each (model, version), in order."""
    groups: dict[tuple[str, str], list[Logged]] = {}
    for logged in batch:
        groups.setdefault((logged.model, logged.version), []).append(logged)
    return groups


def _parts(group: list[Logged], part_bytes: int) -> Iterator[list[tuple[Logged, bytes]]]:
    """Consecutive runs of records, with their JSON lines, of about `part_bytes` in all (a record
    larger than that is a run of its own): objects of bounded size, each read back in one piece.
    Lines are made as the runs are written, so a flush holds one object's lines at a time."""
    part: list[tuple[Logged, bytes]] = []
    total = 0
    for logged in group:
        line = logged.json_line()
        if part and total + len(line) + 1 > part_bytes:
            yield part
            part, total = [], 0
        part.append((logged, line))
        total += len(line) + 1
    if part:
        yield part


def frame(model: str, version: str, time: float, arrays: tuple[np.ndarray, ...]) -> list:
    """One logged call as the protocol sends it: the header line, then each array's bytes
    (C-contiguous arrays, written without a copy)."""
    for a in arrays:
        if a.dtype.kind not in "biuf" or not a.flags.c_contiguous:
            raise TypeError(f"a traffic log array must be C-contiguous numbers, not {a.dtype} {a.flags}")
    header = orjson.dumps([model, version, time, [[a.dtype.str, a.shape] for a in arrays]]) + b"\n"
    return [header, *arrays]


def read_logged(stream: BinaryIO) -> Iterator[Logged]:
    """The logged calls on `stream`, until its end (a call cut short, the server died, is not read)."""
    while header := stream.readline():
        model, version, time, specs = orjson.loads(header)
        arrays = []
        for dtype, shape in specs:
            size = math.prod(shape) * np.dtype(dtype).itemsize
            data = stream.read(size)
            if len(data) < size:
                return
            arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape))
        inputs, outputs, flagged = arrays
        yield Logged(model, version, time, inputs, outputs, flagged)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flush-seconds", type=float, default=2.0)
    parser.add_argument("--max-bytes", type=int, default=MAX_BUFFER_BYTES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s traffic-writer %(levelname)s %(message)s")
    reports = threading.Lock()

    def report(outcome: str, records: int) -> None:
        with reports:
            sys.stdout.write(f"{outcome} {records}\n")
            sys.stdout.flush()

    writer = BatchWriter(ObjectStore.from_env(), report, args.flush_seconds, args.max_bytes)
    writer.start()
    try:
        for logged in read_logged(sys.stdin.buffer):
            writer.add(logged)
    finally:
        writer.stop()


if __name__ == "__main__":
    main()
