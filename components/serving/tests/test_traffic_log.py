import datetime as dt
import os
import re
import threading
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client import REGISTRY

from components.serving import traffic_log
from components.serving.client import predict_v1
from components.serving.traffic_log import LOG_BUCKET, TrafficLogger, TrafficRecord, read_traffic
from components.store.object_store import ObjectStore, RetryPolicy

pytestmark = pytest.mark.integration


def record(model, version, rows):
    return TrafficRecord(model, version, rows, [sum(r) for r in rows], [False] * len(rows))


def test_flush_writes_batches_that_read_back(store):
    logger = TrafficLogger(store)
    logger.log(record("m1", "1", [[1, 2], [3, 4]]))
    logger.log(record("m1", "1", [[5, 6]]))
    logger.log(record("m1", "2", [[7, 8]]))
    logger.flush()
    np.testing.assert_array_equal(read_traffic(store, "m1", "1"), [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(read_traffic(store, "m1", "2"), [[7, 8]])
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert read_traffic(store, "m1", "1", since=future).size == 0


def test_arrays_are_logged_as_numbers_whatever_their_layout(store):
    rows = np.arange(12, dtype=np.float64).reshape(6, 2)
    logger = TrafficLogger(store)
    logger.log(TrafficRecord("m4", "1", rows[:3], rows[:3].sum(axis=1), np.zeros(3, dtype=bool)))
    logger.log(TrafficRecord("m4", "1", rows[3:, ::-1], rows[3:, 0], np.ones(3, dtype=bool)))  # not C-contiguous
    logger.flush()
    assert logger.written == 2
    np.testing.assert_array_equal(read_traffic(store, "m4", "1"), np.vstack([rows[:3], rows[3:, ::-1]]))


def dropped_on_metrics() -> float:
    return REGISTRY.get_sample_value("fuseml_traffic_records_total", {"outcome": "dropped"}) or 0.0


def test_memory_is_bounded_and_drops_are_counted(store):
    line_bytes = len(traffic_log._json_line(record("m2", "1", [[0, 0]])))
    logger = TrafficLogger(store, max_bytes=3 * line_bytes)
    dropped_before = dropped_on_metrics()
    for i in range(5):
        logger.log(record("m2", "1", [[i, i]]))
    assert logger.dropped == 2
    assert dropped_on_metrics() - dropped_before == 2
    logger.flush()
    assert len(read_traffic(store, "m2", "1")) == 3


def test_a_buffer_past_half_full_is_written_without_waiting_for_the_interval(store):
    line_bytes = len(traffic_log._json_line(record("m8", "1", [[0, 0]])))
    logger = TrafficLogger(store, flush_seconds=3600, max_bytes=10 * line_bytes)
    logger.start()
    try:
        for i in range(4):
            logger.log(record("m8", "1", [[i, i]]))
        time.sleep(0.5)
        assert logger.written == 0  # under half: left to the hourly flush
        for i in range(4, 7):
            logger.log(record("m8", "1", [[i, i]]))
        deadline = time.monotonic() + 15
        while logger.written < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert logger.written >= 6 and logger.dropped == 0
    finally:
        logger.stop()
    np.testing.assert_array_equal(read_traffic(store, "m8", "1"), [[i, i] for i in range(7)])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_regular_writer_only_takes_cpu_time_serving_leaves(store):
    logger = TrafficLogger(store)
    logger.start()
    try:
        policies = {t.name: os.sched_getscheduler(t.native_id) for t in threading.enumerate() if "traffic" in t.name}
    finally:
        logger.stop()
    assert policies == {"traffic-logger": os.SCHED_IDLE, "traffic-logger-urgent": os.SCHED_OTHER}


def test_store_outage_keeps_the_batch_for_the_next_flush(store_process):
    store = ObjectStore(store_process.config, RetryPolicy(attempts=1, timeout=1))
    logger = TrafficLogger(store)
    logger.log(record("m3", "1", [[1, 1]]))
    store_process.stop()
    try:
        logger.flush()  # fails quietly, keeps the record
        assert logger.written == 0 and logger.dropped == 0
    finally:
        store_process.start()
    deadline = time.monotonic() + 30  # a store that just came back may time out the first writes
    while logger.written == 0 and time.monotonic() < deadline:
        logger.flush()
    assert logger.written == 1 and logger.dropped == 0
    np.testing.assert_array_equal(read_traffic(store, "m3", "1"), [[1, 1]])


def test_a_record_written_twice_by_a_retry_is_read_once(store):
    """A write that timed out may have landed; the retry writes the record again."""
    twice = record("m7", "1", [[2, 3]])
    logger = TrafficLogger(store)
    logger.log(twice)
    logger.flush()
    logger.log(twice)
    logger.log(record("m7", "1", [[2, 3]]))  # the same rows asked again: a record of its own
    logger.flush()
    assert len(store.list_keys(LOG_BUCKET, "m7/1/")) == 2
    np.testing.assert_array_equal(read_traffic(store, "m7", "1"), [[2, 3], [2, 3]])


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


def test_a_large_flush_is_cut_into_objects_of_bounded_size(store, monkeypatch):
    monkeypatch.setattr(traffic_log, "PART_BYTES", 200)
    logger = TrafficLogger(store)
    rows = [[[i, i + 1]] * 3 for i in range(10)]
    for r in rows:
        logger.log(record("m5", "1", r))
    logger.flush()
    keys = store.list_keys(LOG_BUCKET, "m5/1/")
    assert len(keys) > 3
    assert all(len(store.get_bytes(LOG_BUCKET, key)) <= 200 for key in keys)
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
    monkeypatch.setattr(traffic_log, "PART_BYTES", 100)
    flaky = FailingAfter(store, allowed=1)
    logger = TrafficLogger(flaky)  # type: ignore[arg-type]
    for i in range(6):
        logger.log(record("m6", "1", [[i, i]]))
    logger.flush()
    first = logger.written
    assert 0 < first < 6 and logger.dropped == 0
    flaky.allowed = 100
    logger.flush()
    assert logger.written == 6
    np.testing.assert_array_equal(read_traffic(store, "m6", "1"), [[i, i] for i in range(6)])  # once each, in order


def test_a_store_that_is_down_is_not_hammered_by_the_urgent_writer(store):
    line_bytes = len(traffic_log._json_line(record("m9", "1", [[0, 0]])))
    down = FailingAfter(store, allowed=0)
    logger = TrafficLogger(down, flush_seconds=3600, max_bytes=4 * line_bytes)  # type: ignore[arg-type]
    logger.start()
    try:
        for i in range(4):
            logger.log(record("m9", "1", [[i, i]]))
        time.sleep(0.3)
        for i in range(4):  # each finds the buffer past half full, and full
            logger.log(record("m9", "1", [[i, i]]))
        time.sleep(0.7)
        attempts = down.attempts
    finally:
        logger.stop()
    assert attempts == 1  # one urgent try, then it waits for the interval
    assert logger.written == 0 and logger.dropped == 4
