"""Log served requests to the object store, like KServe's payload logger, and read them back.

Requests only append to a bounded in-memory buffer: `log` keeps references to the arrays of the
model call it logs, a microsecond on the event loop. Every `FEED_SECONDS` a thread hands what is
buffered to the writer, a process of its own (`traffic_log_writer`: why a process, and how it
writes), through a pipe, as raw array bytes: turning them into JSON (a third of a millisecond for
a batch of 3,200 rows, which held the event loop while it was done here) is the writer's work.
The feeder's own work is a short header per call and copies into the pipe. Past the bound new
records are dropped and counted (`fuseml_traffic_records_total{outcome="dropped"}` on /metrics, as
are the writer's written and dropped records). A writer that dies is started again, and the
records it had not reported on are counted as dropped. Serving never waits for, nor fails
because of, logging.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client import Counter

from components.serving.traffic_log_writer import LOG_BUCKET, MAX_BUFFER_BYTES, frame
from components.store.object_store import ObjectStore, StoreConfig

log = logging.getLogger(__name__)

FEED_SECONDS = 0.2
RESTART_SECONDS = 1.0  # the least time between a writer's start and the next's
PIPE_BYTES = 1 << 20  # what Linux lets a process ask for without privileges
RECORDS = Counter("fuseml_traffic_records", "Traffic log records, by what became of them", ["outcome"])

__all__ = ["LOG_BUCKET", "TrafficLogger", "read_records", "read_traffic"]

# (model, version, time, inputs, outputs, flags): one model call, as `log` got it
Call = tuple[str, str, float, np.ndarray, np.ndarray, np.ndarray]


class TrafficLogger:
    """The server's side of the traffic log; the writer process reads the store's settings from
    the environment (MINIO_*), as the server does."""

    def __init__(self, flush_seconds: float = 2.0, max_bytes: int = MAX_BUFFER_BYTES) -> None:
        self.flush_seconds = flush_seconds
        self._buffer: deque[Call] = deque()
        self._buffered_bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="traffic-feeder", daemon=True)
        self._writer: WriterProcess | None = None
        self.dropped = 0
        self.written = 0

    def start(self) -> None:
        StoreConfig.from_env()  # what the writer will need, or a clear error now
        self._writer = WriterProcess(self.flush_seconds, self._max_bytes, self._count)
        self._feeder.start()

    @property
    def writer_pid(self) -> int | None:
        """The writer process (its CPU time and memory show apart from the server's)."""
        return self._writer.pid if self._writer else None

    def log(self, model: str, version: str, inputs: np.ndarray, outputs: np.ndarray, flagged: np.ndarray) -> None:
        """Never blocks on I/O and never raises into the request. The arrays are kept as they are:
        the caller must not change them afterwards."""
        size = inputs.nbytes + outputs.nbytes + flagged.nbytes
        with self._lock:
            full = self._buffered_bytes + size > self._max_bytes
            if not full:
                self._buffer.append((model, version, time.time(), inputs, outputs, flagged))
                self._buffered_bytes += size
        if full:
            self._count("dropped", 1)

    def stop(self) -> None:
        """Hand over what is buffered and wait (30 s at most) for the writer to write it."""
        self._stop.set()
        if self._feeder.is_alive():
            self._feeder.join(timeout=30)
        if self._writer is not None:
            self._writer.finish(timeout=30)

    def _feed(self) -> None:
        while not self._stop.wait(FEED_SECONDS):
            self._hand_over()
        self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
        assert self._writer is not None
        if not self._writer.running():
            self._replace_writer()
        frames, framed = [], 0
        for model, version, at, *arrays in batch:
            try:
                frames += frame(model, version, at, tuple(np.ascontiguousarray(a) for a in arrays))
                framed += 1
            except Exception:
                log.warning("traffic record of %s %s could not be handed over", model, version, exc_info=True)
                self._count("dropped", 1)
        if not framed:
            return
        try:
            self._writer.hand(frames, framed)
        except OSError:  # it died since it was asked: once more, to a new one
            self._replace_writer()
            try:
                self._writer.hand(frames, framed)
            except OSError as error:
                log.warning("traffic log writer is gone (%s); %d records dropped", error, framed)
                self._count("dropped", framed)

    def _replace_writer(self) -> None:
        assert self._writer is not None
        self._writer.finish(timeout=5)
        log.warning("traffic log writer ended (exit status %s); starting another", self._writer.exit_status)
        if time.monotonic() - self._writer.started < RESTART_SECONDS:
            self._stop.wait(RESTART_SECONDS)  # a writer that cannot start is not started 5 times a second
        self._writer = WriterProcess(self.flush_seconds, self._max_bytes, self._count)

    def _count(self, outcome: str, records: int) -> None:
        with self._lock:
            if outcome == "written":
                self.written += records
            else:
                self.dropped += records
        RECORDS.labels(outcome).inc(records)


class WriterProcess:
    """One `traffic_log_writer` process, and a thread that turns its reports into counts."""

    def __init__(self, flush_seconds: float, max_bytes: int, count: Callable[[str, int], None]) -> None:
        self._process = subprocess.Popen(
            [
                *(sys.executable, "-m", "components.serving.traffic_log_writer"),
                *("--flush-seconds", str(flush_seconds), "--max-bytes", str(max_bytes)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C or a signal to the server's group is not for the writer
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        with contextlib.suppress(OSError):  # else the default pipe: hand-overs wait for the writer more often
            fcntl.fcntl(self._stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.started = time.monotonic()
        self._count = count
        self._handed = 0  # records written to the pipe
        self._reported = 0  # records the writer said it wrote or dropped
        self._reports = threading.Thread(target=self._read_reports, name="traffic-reports", daemon=True)
        self._reports.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exit_status(self) -> int | None:
        return self._process.returncode

    def running(self) -> bool:
        return self._process.poll() is None

    def hand(self, frames: list, records: int) -> None:
        """Write `records` logged calls' frames to the pipe (large arrays without the GIL)."""
        for piece in frames:
            self._stdin.write(piece)
        self._stdin.flush()
        self._handed += records

    def finish(self, timeout: float) -> None:
        """Close the pipe, wait for the writer to write what it holds, and count as dropped the
        records it never reported on (it was killed, say)."""
        with contextlib.suppress(OSError):  # a broken pipe: what it held is counted below
            self._stdin.close()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("traffic log writer did not finish in %s s; stopping it", timeout)
            self._process.kill()
            self._process.wait()
        self._reports.join(timeout=5)
        lost = self._handed - self._reported
        if lost > 0:
            log.warning("traffic log writer ended with %d records unwritten", lost)
            self._count("dropped", lost)

    def _read_reports(self) -> None:
        for line in self._stdout:
            outcome, records = line.decode().split()
            self._reported += int(records)
            self._count(outcome, int(records))


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
