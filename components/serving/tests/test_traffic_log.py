import datetime as dt
import time

import numpy as np
import pytest

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


def test_memory_is_bounded_and_drops_are_counted(store):
    logger = TrafficLogger(store, max_records=3)
    for i in range(5):
        logger.log(record("m2", "1", [[i, i]]))
    assert logger.dropped == 2
    logger.flush()
    assert len(read_traffic(store, "m2", "1")) == 3


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
    logger.flush()
    assert logger.written == 1
    np.testing.assert_array_equal(read_traffic(store, "m3", "1"), [[1, 1]])


def test_the_model_server_logs_requests_within_seconds(model_server, deployed_sum, store):
    version = predict_v1(model_server, "sum", [[123456, 7]])["model_version"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if [123456, 7] in read_traffic(store, "sum", version).tolist():
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"request not logged to s3://{LOG_BUCKET}/sum/{version}/ within 15 s")
