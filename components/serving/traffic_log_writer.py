"""The traffic log's writer: a process of its own that writes logged requests to the object store.

The model server hands it JSON lines through a pipe (`traffic_log.TrafficLogger`) and it writes
them in batches to `s3://inference-logs/<model>/<version>/<UTC time>-<id>.jsonl` every few
seconds. Uploading (joining, SigV4 hashing and sending some 12 MB/s under 100-row requests at
full load) is tens of milliseconds of CPU per flush. Run by a thread of the server, at normal
priority it took those milliseconds from requests in flight; at low priority (SCHED_IDLE) it was
preempted while holding the GIL and the event loop waited behind it: either way it set the
server's p99 latency. In a process of its own it holds no lock serving needs, and it still runs
under SCHED_IDLE, on CPU time serving leaves over. When serving leaves none for long, the
buffer fills; past half of its bound a second thread at normal priority flushes it, so that
records are dropped only when the store cannot keep up, never merely because serving is busy.

When the store is down a batch is retried on the next flush; past the bound new records are
dropped. A write that timed out may still have landed, so a retry can store a record twice:
each record carries an id, and the readers keep the first copy. The writer reports what became
of records on stdout (`written N`, `dropped N`), for the server's /metrics.

Protocol on stdin, until end of file: a JSON header line `[model, version, records, bytes]`,
then `bytes` bytes: that many records' JSON lines joined by newlines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from typing import BinaryIO

from components.store.object_store import ObjectStore

log = logging.getLogger(__name__)

LOG_BUCKET = "inference-logs"
PART_BYTES = 2 << 20  # the largest object a flush writes (unless one chunk of lines is larger)
MAX_BUFFER_BYTES = 64 << 20  # JSON lines held for writing; past half of it, flushes stop yielding

Report = Callable[[str, int], None]  # (outcome, records): "written" or "dropped"


class BatchWriter:
    """A bounded buffer of chunks of JSON lines, written to the store in objects of at most
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
        # (model, version, records, their JSON lines joined by newlines)
        self._buffer: deque[tuple[str, str, int, bytes]] = deque()
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

    def add(self, model: str, version: str, records: int, lines: bytes) -> None:
        with self._lock:
            full = self._buffered_bytes + len(lines) > self._max_bytes
            if not full:
                self._buffer.append((model, version, records, lines))
                self._buffered_bytes += len(lines)
                if self._buffered_bytes > self._max_bytes // 2:
                    self._urgent.set()
        if full:
            self._count("dropped", records)

    def flush(self) -> bool:
        """Write what is buffered; False when the store refused some of it (kept for the next flush)."""
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
        if not batch:
            return True
        written: set[int] = set()  # indexes into `batch` of the chunks in the store
        try:
            if not self._bucket_ready:
                self.store.ensure_bucket(LOG_BUCKET)
                self._bucket_ready = True
            for (model, version), indexes in _group(batch).items():
                for part in _parts([len(batch[i][3]) + 1 for i in indexes], PART_BYTES):
                    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                    self.store.put_bytes(
                        LOG_BUCKET,
                        f"{model}/{version}/{stamp}-{uuid.uuid4().hex[:8]}.jsonl",
                        b"\n".join(batch[indexes[i]][3] for i in part),
                        content_type="application/x-ndjson",
                    )
                    written.update(indexes[i] for i in part)
                    self._count("written", sum(batch[indexes[i]][2] for i in part))
            return True
        except Exception as error:  # put back what was not written, within the bound, and try again later
            log.warning("traffic log flush failed, will retry: %s", error)
            unwritten = [entry for i, entry in enumerate(batch) if i not in written]
            with self._lock:
                kept = 0
                for entry in unwritten:
                    if self._buffered_bytes + len(entry[3]) > self._max_bytes:
                        break
                    self._buffered_bytes += len(entry[3])
                    kept += 1
                self._buffer.extendleft(reversed(unwritten[:kept]))
            self._count("dropped", sum(entry[2] for entry in unwritten[kept:]))
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


def _group(batch: list[tuple[str, str, int, bytes]]) -> dict[tuple[str, str], list[int]]:
    """Indexes of the chunks of each (model, version), in order."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (model, version, _, _) in enumerate(batch):
        groups.setdefault((model, version), []).append(i)
    return groups


def _parts(sizes: list[int], part_bytes: int) -> Iterator[range]:
    """Consecutive runs of items whose sizes add up to about `part_bytes` (an item larger than that
    is a run of its own): objects of bounded size, each read back in one piece."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if total and total + size > part_bytes:
            yield range(start, i)
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


def read_chunks(stream: BinaryIO) -> Iterator[tuple[str, str, int, bytes]]:
    """The (model, version, records, lines) chunks on `stream`, until its end."""
    while header := stream.readline():
        model, version, records, size = json.loads(header)
        lines = stream.read(size)
        if len(lines) < size:  # the server died mid-chunk
            return
        yield model, version, records, lines


def chunk_header(model: str, version: str, records: int, size: int) -> bytes:
    return json.dumps([model, version, records, size]).encode() + b"\n"


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
        for chunk in read_chunks(sys.stdin.buffer):
            writer.add(*chunk)
    finally:
        writer.stop()


if __name__ == "__main__":
    main()
