"""The load generator's warm-up: unmeasured load on the connections that are then measured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.loadgen import run_load


class _Counting(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, failing_first: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = self.requests = 0
        self.failing_first = failing_first


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's connections expect
    server: _Counting

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.requests += 1
            failing = self.server.requests <= self.server.failing_first
        body = b"{}"
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _serving(failing_first: int = 0) -> Iterator[_Counting]:
    """A counting server, serving until the block ends."""
    server = _Counting(failing_first)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Counting) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_the_warmup_runs_on_the_measured_connections_and_counts_in_no_figure() -> None:
    with _serving() as server:
        result = run_load(_url(server), lambda c, n: ("/", b"{}"), clients=4, seconds=0.4, warmup=0.4)

    assert server.connections == 4  # the measured requests went over the warm-up's connections
    assert result.errors == 0 and result.requests > 0
    assert server.requests > result.requests + 10  # the warm-up's requests are not counted
    assert len(result.latencies) == result.requests == result.statuses[200]
    assert 0.35 <= result.seconds < 0.8  # the measured time only


def test_a_request_that_fails_in_the_warmup_is_still_an_error() -> None:
    with _serving(failing_first=3) as server:
        result = run_load(_url(server), lambda c, n: ("/", b"{}"), clients=2, seconds=0.3, warmup=0.3)

    assert result.errors == 3
    assert all("status 500" in sample for sample in result.error_samples)
    assert set(result.statuses) == {200}  # what was measured came after the failures


def test_without_a_warmup_everything_is_measured() -> None:
    with _serving() as server:
        result = run_load(_url(server), lambda c, n: ("/", b"{}"), clients=3, total=60)

    assert result.requests == server.requests == 60
    assert server.connections == 3
