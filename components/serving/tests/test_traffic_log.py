import datetime as dt
import io
import os
import re
import signal
import threading
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client import REGISTRY

from components.serving import traffic_log, traffic_log_writer
from components.serving.client import predict_v1
from components.serving.traffic_log import LOG_BUCKET, TrafficLogger, read_records, read_traffic
from components.serving.traffic_log_writer import BatchWriter, Logged, frame, read_logged
from components.store.object_store import ObjectStore, RetryPolicy, StoreError

pytestmark = pytest.mark.integration


def record(model: str, version: str, rows) -> tuple:
    """`TrafficLogger.log`'s arguments for a call that answered the sum of each row."""
    rows = np.asarray(rows, dtype=np.float64)
    return model, version, rows, rows.sum(axis=1), np.zeros(len(rows), dtype=bool)


def logged(model: str, version: str, rows) -> Logged:
    _, _, *arrays = record(model, version, rows)
    return Logged(model, version, time.time(), *arrays)


def as_bytes(frames: list) -> bytes:
    return b"".join(bytes(piece) for piece in frames)


def on_metrics(outcome: str) -> float:
    return REGISTRY.get_sample_value("fuseml_traffic_records_total", {"outcome": outcome}) or 0.0


# ---------------------------------------------------------------- the server's side, with its writer process
# (the store fixture puts the store's MINIO_* settings in the environment the writer inherits)


def test_logged_records_are_written_by_a_process_of_their_own_and_read_back(store):
    written_before = on_metrics("written")
    logger = TrafficLogger()
    logger.start()
    try:
        assert logger.writer_pid not in (None, os.getpid())
        logger.log(*record("m1", "1", [[1, 2], [3, 4]]))
        logger.log(*record("m1", "1", [[5, 6]]))
        logger.log(*record("m1", "2", [[7, 8]]))
    finally:
        logger.stop()  # hands over and waits for the writer to write
    assert (logger.written, logger.dropped) == (3, 0)
    assert on_metrics("written") - written_before == 3
    np.testing.assert_array_equal(read_traffic(store, "m1", "1"), [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(read_traffic(store, "m1", "2"), [[7, 8]])
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert read_traffic(store, "m1", "1", since=future).size == 0


def test_arrays_are_logged_as_numbers_whatever_their_layout_and_type(store):
    rows = np.arange(12, dtype=np.float64).reshape(6, 2)
    logger = TrafficLogger()
    logger.start()
    try:
        logger.log("m4", "1", rows[:3], rows[:3].sum(axis=1), np.zeros(3, dtype=bool))
        logger.log("m4", "1", rows[3:, ::-1], rows[3:, 0], np.ones(3, dtype=bool))  # not C-contiguous
        logger.log("m4", "1", np.float32([[0.1, 0.2]]), np.float64([0.3]), np.zeros(1, dtype=bool))  # V2's FP32
        logger.log("m4", "1", np.array([[object(), 1]]), np.zeros(1), np.zeros(1, dtype=bool))  # no numbers
    finally:
        logger.stop()
    assert (logger.written, logger.dropped) == (3, 1)
    np.testing.assert_array_equal(read_traffic(store, "m4", "1"), np.vstack([rows[:3], rows[3:, ::-1], [[0.1, 0.2]]]))
    (*_, fp32) = read_records(store, "m4", "1")
    assert fp32["inputs"] == [[0.1, 0.2]] and fp32["outputs"] == [0.3] and fp32["flagged"] == [False]
    assert abs(dt.datetime.fromisoformat(fp32["time"]) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_memory_is_bounded_and_drops_are_counted():
    logger = TrafficLogger(max_bytes=3 * logged("m2", "1", [[0, 0]]).nbytes)  # not started: nothing leaves
    dropped_before = on_metrics("dropped")
    for i in range(5):
        logger.log(*record("m2", "1", [[i, i]]))
    assert logger.dropped == 2
    assert on_metrics("dropped") - dropped_before == 2


def test_a_logger_without_store_settings_says_so_before_starting_a_writer(monkeypatch):
    monkeypatch.delenv("MINIO_SECRET_KEY", raising=False)
    logger = TrafficLogger()
    with pytest.raises(StoreError, match="MINIO_SECRET_KEY"):
        logger.start()
    assert logger.writer_pid is None


def test_a_stalled_writer_never_makes_logging_wait(store):
    """The writer stopped (as if starved of CPU) while more than its pipe holds is logged: each
    `log` still returns at once, and once the writer runs again everything is written."""
    rows = [[float(i), float(i)] for i in range(100)]
    logger = TrafficLogger()
    logger.start()
    os.kill(logger.writer_pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for _ in range(1000):  # some 4 MB, four times the pipe
            started = time.perf_counter()
            logger.log(*record("m10", "1", rows))
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.0005)
    finally:
        os.kill(logger.writer_pid, signal.SIGCONT)
        logger.stop()
    assert slowest < 0.05
    assert (logger.written, logger.dropped) == (1000, 0)
    assert len(read_traffic(store, "m10", "1")) == 100_000


def test_a_writer_that_dies_is_replaced_and_what_it_held_is_counted_dropped(store):
    logger = TrafficLogger(flush_seconds=3600)  # the writer holds what it gets until it stops
    logger.start()
    try:
        logger.log(*record("m11", "1", [[1, 1]]))
        time.sleep(5 * traffic_log.FEED_SECONDS)  # handed over, held by the writer
        first = logger.writer_pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while logger.writer_pid == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logger.writer_pid != first and logger.dropped == 1
        logger.log(*record("m11", "1", [[2, 2]]))
    finally:
        logger.stop()
    assert (logger.written, logger.dropped) == (1, 1)
    np.testing.assert_array_equal(read_traffic(store, "m11", "1"), [[2, 2]])


def test_the_model_server_logs_requests_within_seconds(model_server, deployed_sum, store):
    version = predict_v1(model_server, "sum", [[123456, 7]])["model_version"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if [123456, 7] in read_traffic(store, "sum", version).tolist():
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"request not logged to s3://{LOG_BUCKET}/sum/{version}/ within 15 s")
    with urllib.request.urlopen(f"{model_server}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    written = re.search(r'^fuseml_traffic_records_total\{outcome="written"\} (\S+)$', metrics, re.M)
    assert written and float(written.group(1)) >= 1


# ---------------------------------------------------------------- the writer's protocol and its batches


def test_logged_calls_read_back_as_framed_and_a_call_cut_short_is_not_read():
    inputs, outputs, flagged = np.float32([[1, 2], [3, 4]]), np.float64([3, 7]), np.array([False, True])
    whole = as_bytes(frame("sum", "v1", 1.5, (inputs, outputs, flagged)))
    cut = as_bytes(frame("sum", "v2", 2.0, (inputs, outputs, flagged)))[:-1]
    (read,) = read_logged(io.BytesIO(whole + cut))
    assert (read.model, read.version, read.time) == ("sum", "v1", 1.5)
    for got, sent in zip((read.inputs, read.outputs, read.flagged), (inputs, outputs, flagged), strict=True):
        assert got.dtype == sent.dtype
        np.testing.assert_array_equal(got, sent)


def test_only_c_contiguous_number_arrays_are_framed():
    with pytest.raises(TypeError, match="C-contiguous numbers"):
        frame("sum", "v1", 0.0, (np.array([["1", "2"]]), np.zeros(1), np.zeros(1, dtype=bool)))
    with pytest.raises(TypeError, match="C-contiguous numbers"):
        frame("sum", "v1", 0.0, (np.zeros((2, 2))[:, ::-1], np.zeros(2), np.zeros(2, dtype=bool)))


def test_flush_writes_the_records_and_reports_them_written(store):
    reports = []
    writer = BatchWriter(store, lambda outcome, records: reports.append((outcome, records)))
    for i in range(3):
        writer.add(logged("m12", "1", [[i, i]]))
    writer.flush()
    assert reports == [("written", 3)]
    np.testing.assert_array_equal(read_traffic(store, "m12", "1"), [[0, 0], [1, 1], [2, 2]])


def test_the_writer_drops_past_its_bound_and_reports_it(store):
    reports = []
    bound = 3 * logged("m2", "1", [[0, 0]]).nbytes
    writer = BatchWriter(store, lambda outcome, records: reports.append((outcome, records)), max_bytes=bound)
    for i in range(5):
        writer.add(logged("m2", "1", [[i, i]]))
    assert writer.dropped == 2 and reports == [("dropped", 1), ("dropped", 1)]
    writer.flush()
    np.testing.assert_array_equal(read_traffic(store, "m2", "1"), [[0, 0], [1, 1], [2, 2]])


def test_a_buffer_past_half_full_is_written_without_waiting_for_the_interval(store):
    writer = BatchWriter(store, flush_seconds=3600, max_bytes=10 * logged("m8", "1", [[0, 0]]).nbytes)
    writer.start()
    try:
        for i in range(4):
            writer.add(logged("m8", "1", [[i, i]]))
        time.sleep(0.5)
        assert writer.written == 0  # under half: left to the hourly flush
        for i in range(4, 7):
            writer.add(logged("m8", "1", [[i, i]]))
        deadline = time.monotonic() + 15
        while writer.written < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert writer.written >= 6 and writer.dropped == 0
    finally:
        writer.stop()
    np.testing.assert_array_equal(read_traffic(store, "m8", "1"), [[i, i] for i in range(7)])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_regular_flush_only_takes_cpu_time_serving_leaves(store):
    writer = BatchWriter(store)
    writer.start()
    try:
        policies = {t.name: os.sched_getscheduler(t.native_id) for t in threading.enumerate() if "traffic" in t.name}
    finally:
        writer.stop()
    assert policies == {"traffic-writer": os.SCHED_IDLE, "traffic-writer-urgent": os.SCHED_OTHER}


def test_store_outage_keeps_the_batch_for_the_next_flush(store_process):
    store = ObjectStore(store_process.config, RetryPolicy(attempts=1, timeout=1))
    writer = BatchWriter(store)
    writer.add(logged("m3", "1", [[1, 1]]))
    store_process.stop()
    try:
        writer.flush()  # fails quietly, keeps the record
        assert writer.written == 0 and writer.dropped == 0
    finally:
        store_process.start()
    deadline = time.monotonic() + 30  # a store that just came back may time out the first writes
    while writer.written == 0 and time.monotonic() < deadline:
        writer.flush()
    assert writer.written == 1 and writer.dropped == 0
    np.testing.assert_array_equal(read_traffic(store, "m3", "1"), [[1, 1]])


def test_a_record_written_twice_by_a_retry_is_read_once(store):
    """A write that timed out may have landed; the retry writes the record again."""
    twice = logged("m7", "1", [[2, 3]])
    writer = BatchWriter(store)
    writer.add(twice)
    writer.flush()
    writer.add(twice)
    writer.add(logged("m7", "1", [[2, 3]]))  # the same rows asked again: a record of its own
    writer.flush()
    assert len(store.list_keys(LOG_BUCKET, "m7/1/")) == 2
    np.testing.assert_array_equal(read_traffic(store, "m7", "1"), [[2, 3], [2, 3]])


def test_a_large_flush_is_cut_into_objects_of_bounded_size(store, monkeypatch):
    rows = [[[i, i + 1]] * 3 for i in range(10)]
    calls = [logged("m5", "1", r) for r in rows]
    part_bytes = 2 * max(len(call.json_line()) + 1 for call in calls)  # two records to an object
    monkeypatch.setattr(traffic_log_writer, "PART_BYTES", part_bytes)
    writer = BatchWriter(store)
    for call in calls:
        writer.add(call)
    writer.flush()
    keys = store.list_keys(LOG_BUCKET, "m5/1/")
    assert len(keys) == 5
    assert all(len(store.get_bytes(LOG_BUCKET, key)) <= part_bytes for key in keys)
    np.testing.assert_array_equal(read_traffic(store, "m5", "1"), np.concatenate(rows))


class FailingAfter:
    """The real store, refusing every write after the first `allowed`."""

    def __init__(self, store: ObjectStore, allowed: int) -> None:
        self.store, self.allowed = store, allowed
        self.attempts = 0

    def ensure_bucket(self, bucket: str) -> None:
        self.store.ensure_bucket(bucket)

    def put_bytes(self, *args, **kwargs) -> None:
        self.attempts += 1
        if self.allowed <= 0:
            raise ConnectionError("store went away")
        self.allowed -= 1
        self.store.put_bytes(*args, **kwargs)


def test_a_flush_that_fails_midway_keeps_only_the_lines_not_written(store, monkeypatch):
    monkeypatch.setattr(traffic_log_writer, "PART_BYTES", 100)
    flaky = FailingAfter(store, allowed=1)
    writer = BatchWriter(flaky)  # type: ignore[arg-type]
    for i in range(6):
        writer.add(logged("m6", "1", [[i, i]]))
    writer.flush()
    first = writer.written
    assert 0 < first < 6 and writer.dropped == 0
    flaky.allowed = 100
    writer.flush()
    assert writer.written == 6
    np.testing.assert_array_equal(read_traffic(store, "m6", "1"), [[i, i] for i in range(6)])  # once each, in order


def test_a_store_that_is_down_is_not_hammered_by_the_urgent_flush(store):
    down = FailingAfter(store, allowed=0)
    writer = BatchWriter(down, flush_seconds=3600, max_bytes=4 * logged("m9", "1", [[0, 0]]).nbytes)  # type: ignore[arg-type]
    writer.start()
    try:
        for i in range(4):
            writer.add(logged("m9", "1", [[i, i]]))
        time.sleep(0.3)
        for i in range(4):  # each finds the buffer past half full, and full
            writer.add(logged("m9", "1", [[i, i]]))
        time.sleep(0.7)
        attempts = down.attempts
    finally:
        writer.stop()
    assert attempts == 1  # one urgent try, then it waits for the interval
    assert writer.written == 0 and writer.dropped == 4
