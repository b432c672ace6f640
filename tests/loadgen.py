"""A small load generator for the local model server: HTTP/1.1 keep-alive connections, or gRPC
channels, one per client, on asyncio.

Used by the load tests and the benchmark. It is deliberately cheap per request (pre-encoded
requests, a minimal HTTP response reader, gRPC messages sent and received as bytes) so that on a
small machine the server, not the client, is what gets measured. It only talks to this
machine's loopback interface.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvloop

LOOPBACK = ("127.0.0.1", "localhost", "::1")

# (client index, request index) -> (path, JSON body) over HTTP; a serialized ModelInferRequest over gRPC
RequestMaker = Callable[[int, int], Any]
# (client index, status, body, seconds) -> an error message, or None when the answer is right. The
# status is the HTTP status, or the gRPC status code's name ("OK", "INVALID_ARGUMENT", ...) with the
# serialized ModelInferResponse, or the error's details, as the body.
ResponseCheck = Callable[[int, Any, bytes, float], "str | None"]
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies), q) * 1000) if self.latencies else float("nan")

    def summary(self) -> str:
        return (
            f"{self.requests} requests, {self.errors} errors in {self.seconds:.1f} s: "
            f"{self.throughput:.0f} req/s, p50 {self.percentile_ms(50):.1f} ms, "
            f"p99 {self.percentile_ms(99):.1f} ms, statuses {dict(self.statuses)}"
        )


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, item: tuple[str, bytes], timeout: float) -> tuple[int, bytes]:
        path, body = item
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
        self.writer.write(head + body)  # no retry: a dropped connection is an error, not something to hide
        return await asyncio.wait_for(self._response(), timeout)

    async def _response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            raise ConnectionError(f"response without Content-Length (status {status})")
        body = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _closed(connection: Any) -> None:
    closing = connection.close()
    if closing is not None:
        await closing


class _Channel:
    """One gRPC channel (one HTTP/2 connection) per client, sending pre-serialized requests."""

    def __init__(self, address: str) -> None:
        import grpc

        self.grpc, self.address = grpc, address
        self.channel: Any = None

    async def request(self, item: bytes, timeout: float) -> tuple[str, bytes]:
        if self.channel is None:
            self.channel = self.grpc.aio.insecure_channel(self.address)
            self.infer = self.channel.unary_unary(GRPC_INFER)  # no (de)serializers: bytes in, bytes out
        try:
            return "OK", await self.infer(item, timeout=timeout)
        except self.grpc.aio.AioRpcError as error:
            if error.code() in (self.grpc.StatusCode.UNAVAILABLE, self.grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ConnectionError(f"{error.code().name}: {error.details()}") from None
            return error.code().name, (error.details() or "").encode()

    async def close(self) -> None:
        if self.channel is not None:
            channel, self.channel = self.channel, None
            await channel.close()


async def _run(
    connect: Callable[[], Any],
    make: RequestMaker,
    check: ResponseCheck | None,
    clients: int,
    total: int | None,
    seconds: float | None,
    timeout: float,
    until: Callable[[], bool] | None,
    warmup: float,
) -> LoadResult:
    if total is None and seconds is None:
        raise ValueError("bound the load: give total, seconds or both")
    result = LoadResult()
    issued = measured = 0
    measure_from = time.monotonic() + warmup
    deadline = measure_from + seconds if seconds else None

    def take() -> tuple[int, bool] | None:
        """The next request's index, and whether it is measured; None when the load is over."""
        nonlocal issued, measured
        now = time.monotonic()
        if total is not None and measured >= total:
            return None
        if deadline is not None and now >= deadline:
            return None
        if until is not None and until():
            return None
        counted = now >= measure_from
        issued += 1
        measured += counted
        return issued - 1, counted

    def failed(problem: str) -> None:
        result.errors += 1
        if len(result.error_samples) < 10:
            result.error_samples.append(problem)

    async def client(index: int) -> None:
        connection = connect()
        try:
            while (taken := take()) is not None:
                n, counted = taken
                item = make(index, n)
                started = time.perf_counter()
                try:
                    status, answer = await connection.request(item, timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
                    await _closed(connection)
                    if counted:
                        result.requests += 1
                        result.statuses["no answer"] += 1
                    failed(f"{type(error).__name__}: {error}")
                    continue
                elapsed = time.perf_counter() - started
                if counted:
                    result.requests += 1
                    result.latencies.append(elapsed)
                    result.statuses[status] += 1
                problem = (
                    check(index, status, answer, elapsed)
                    if check
                    else (None if status in (200, "OK") else f"status {status}: {answer[:200]!r}")
                )
                if problem:
                    failed(problem)
        finally:
            await _closed(connection)

    await asyncio.gather(*(client(i) for i in range(clients)))
    result.seconds = time.monotonic() - measure_from
    return result


def run_load(
    url: str,
    make: RequestMaker,
    clients: int = 32,
    total: int | None = None,
    seconds: float | None = None,
    check: ResponseCheck | None = None,
    timeout: float = 30.0,
    until: Callable[[], bool] | None = None,
    warmup: float = 0.0,
) -> LoadResult:
    """Send requests from `clients` keep-alive connections until `total` are sent, `seconds`
    pass or `until()` says so (whichever comes first; total or seconds must be given).

    With `warmup`, the first seconds of load go over the same connections unmeasured: requests
    sent in them count in no figure (nor in `total` or `seconds`), except as errors when they
    fail, since a failure is never hidden. A measurement that opened its connections itself
    would include what a burst of new connections does to a server."""
    scheme, _, rest = url.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if scheme != "http" or host not in LOOPBACK:
        raise ValueError(f"the load generator only targets this machine over http, not {url}")
    return uvloop.run(
        _run(lambda: _Connection(host, int(port)), make, check, clients, total, seconds, timeout, until, warmup)
    )


def run_grpc_load(
    address: str,
    make: RequestMaker,
    clients: int = 32,
    total: int | None = None,
    seconds: float | None = None,
    check: ResponseCheck | None = None,
    timeout: float = 30.0,
    until: Callable[[], bool] | None = None,
    warmup: float = 0.0,
) -> LoadResult:
    """`run_load` over gRPC (the Open Inference Protocol's ModelInfer) at host:port; `make` gives
    serialized ModelInferRequests."""
    host = address.rpartition(":")[0].strip("[]")
    if host not in LOOPBACK:
        raise ValueError(f"the load generator only targets this machine, not {address}")
    return asyncio.run(_run(lambda: _Channel(address), make, check, clients, total, seconds, timeout, until, warmup))
