"""Finding ports for a local store: every port `weed mini` derives from the S3 port must be free."""

import socket

import pytest

from components.store.local_store import free_store_port


def test_a_block_with_any_derived_port_taken_is_skipped():
    first = free_store_port(26000, 27000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 10000 + 12))  # the gRPC port of the filer
        assert free_store_port(first, 27000) >= first + 50


def test_no_free_block_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="no free port block"):
            free_store_port(port, port + 1)
