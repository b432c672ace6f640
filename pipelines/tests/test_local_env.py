"""The embedded stand-ins: a store on the port that is not ours is reported at once, by name."""

from __future__ import annotations

import time

import pytest

from components.store.object_store import StoreError
from pipelines import cli, local_env

pytestmark = pytest.mark.integration


def test_a_store_that_refuses_our_credentials_is_named_at_once(store_config, tmp_path, monkeypatch):
    """Another checkout's store on the port: say so, rather than start a second one and time out."""
    monkeypatch.setenv("MINIO_ENDPOINT", store_config.endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "another-checkout")
    monkeypatch.setenv("MINIO_SECRET_KEY", "its-own-secret-key")
    started = time.monotonic()
    with pytest.raises(StoreError, match="refuses this checkout's credentials.*another store.*make stop"):
        local_env.ensure_store(tmp_path)
    assert time.monotonic() - started < 15
    assert not (tmp_path / "object-store.pid").exists()  # no second store was started


def test_make_run_reports_it_in_one_line_before_any_work(store_config, monkeypatch, capsys):
    monkeypatch.setenv("MINIO_ENDPOINT", store_config.endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "another-checkout")
    monkeypatch.setenv("MINIO_SECRET_KEY", "its-own-secret-key")
    assert cli.main(["run", "sum"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: the S3 server on ") and "Traceback" not in error


def test_the_running_store_with_our_credentials_is_used(store_config, tmp_path):
    assert local_env.ensure_store(tmp_path) == store_config
