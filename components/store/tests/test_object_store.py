import time

import pytest

from components.store.object_store import ObjectStore, RetryPolicy, StoreConfig, StoreError


def test_config_requires_credentials_and_names_them():
    with pytest.raises(StoreError, match="MINIO_ACCESS_KEY and MINIO_SECRET_KEY"):
        StoreConfig.from_env({})


def test_config_parses_scheme_and_hides_secret():
    config = StoreConfig.from_env(
        {"MINIO_ENDPOINT": "https://minio.example:9000", "MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "very-secret"}
    )
    assert (config.endpoint, config.secure) == ("minio.example:9000", True)
    assert "very-secret" not in repr(config)


def test_config_rejects_a_path_in_the_endpoint():
    with pytest.raises(StoreError, match="host:port"):
        StoreConfig.from_env(
            {"MINIO_ENDPOINT": "127.0.0.1:9000/bucket", "MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "b"}
        )


@pytest.mark.integration
def test_round_trip_and_missing_key(store, bucket):
    store.put_bytes(bucket, "a/b.txt", b"hello")
    assert store.get_bytes(bucket, "a/b.txt") == b"hello"
    assert store.get_bytes_or_none(bucket, "a/missing") is None
    assert store.list_keys(bucket, "a/") == ["a/b.txt"]


@pytest.mark.integration
def test_wrong_secret_fails_fast_with_a_clear_message(store_config, bucket):
    wrong = StoreConfig(store_config.endpoint, store_config.access_key, "not-the-secret")
    started = time.monotonic()
    with pytest.raises(StoreError, match="SignatureDoesNotMatch: wrong secret key"):
        ObjectStore(wrong).put_bytes(bucket, "x", b"1")
    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_missing_bucket_fails_fast(store):
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.put_bytes("no-such-bucket-here", "x", b"1")


def test_unreachable_store_is_retried_then_fails_clearly():
    from conftest import free_port

    delays: list[float] = []
    config = StoreConfig(f"127.0.0.1:{free_port()}", "a", "b")
    store = ObjectStore(config, RetryPolicy(attempts=4, first_delay=0.1, timeout=1), sleep=delays.append)
    with pytest.raises(StoreError, match="unavailable after 4 attempts"):
        store.get_bytes("models", "x")
    assert delays == [0.1, 0.2, 0.4]


@pytest.mark.integration
def test_store_down_then_back_is_survived(store_process, bucket):
    """Stop the real store mid-operation; the retries carry the write through once it is back."""
    import threading

    store = ObjectStore(store_process.config, RetryPolicy(attempts=30, first_delay=0.5, max_delay=1, timeout=2))
    store_process.stop()
    restarter = threading.Timer(2.0, store_process.start)
    restarter.start()
    try:
        store.put_bytes(bucket, "after-restart", b"still here")
    finally:
        restarter.join()
    assert store.get_bytes(bucket, "after-restart") == b"still here"
