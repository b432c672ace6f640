"""Server-side micro-batching: the rows of concurrent requests go through the model in one call.

Per call, the envelope check, the metrics and a traffic log record cost the same whatever the
rows, and so does a TensorFlow call: about half a millisecond (a LiteRT one, microseconds).
Under concurrent load the server would spend much of its time on that per-call overhead.
Requests hand their checked rows to a `MicroBatcher` and wait; a drain task lets the event loop
go on reading requests while they keep coming, takes everything queued, runs it through the
rows function and hands each request its own slice of every part of the answer.

Nothing waits on a timer: a request that arrives when the server is idle is answered after a
few idle turns of the event loop, alone. The model runs on the event loop's thread, not in a worker
thread: the call is short, holds the GIL for much of it anyway, and on the one core a model
server usually gets, a worker thread only added GIL hand-offs and context switches (less
throughput in tests/benchmarks/bench_model_server.py). The price: the loop reads nothing while a
call runs, which `max_rows` bounds (the README gives what that costs for each network). Rows for
different predictors (versions) are never mixed: each request is answered by the version it
started with.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import numpy as np

# rows [n, k] -> a tuple of per-row results, each a list or array of length n
RowsFunction = Callable[[np.ndarray], tuple]
_yield_core = getattr(os, "sched_yield", lambda: None)  # Unix; elsewhere the turns only spin


class MicroBatcher:
    def __init__(self, max_rows: int = 8192, patience: int = 8, max_turns: int = 16) -> None:
        self.max_rows = max_rows
        self.patience = patience
        self.max_turns = max_turns
        self._queue: list[tuple[RowsFunction, np.ndarray, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None  # referenced, so the waiting task is not collected

    async def predict(self, predict: RowsFunction, inputs: np.ndarray) -> tuple:
        """`predict(inputs)`, possibly computed together with other requests' rows: each part of
        the result tuple, cut to this request's rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.append((predict, inputs, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # Turns of the event loop first, until `patience` turns in a row bring no request (at most
        # `max_turns`): requests read meanwhile join the batch. A call reaches the model several
        # turns after its bytes arrive (gRPC's completion queue hands the loop about one call per
        # turn), so stopping at the first quiet turn left gRPC with a model call per request. An
        # idle turn costs microseconds: a request alone still goes through without waiting.
        # Each turn also offers the core to the server's other threads: the loop never blocks
        # while it waits here, and gRPC's poller and event-engine threads, which read the
        # requests that would join the batch and write the answers, otherwise waited for the
        # scheduler to preempt it. Against the same server without the yield, in the setup of
        # tests/benchmarks/bench_model_server.py (load from its own client and from h2load), the
        # median of the rounds' gRPC p99 was lower in 7 A/B runs of 8 (by 1.1-3.4 ms), the pooled
        # p99, which one disturbed round decides, in 5 of 8; HTTP (one run) unchanged.
        # The window is short: a request that misses one waits for the next, and the distance
        # between windows set the gRPC p99. 64 turns suited TensorFlow's half-millisecond calls;
        # with the model under LiteRT, 16 turns gave gRPC a lower p99 at as much throughput.
        queued, quiet = 0, 0
        for _ in range(self.max_turns):
            quiet = quiet + 1 if len(self._queue) == queued else 0
            if quiet > self.patience:
                break
            queued = len(self._queue)
            _yield_core()
            await asyncio.sleep(0)
        waiting, self._queue, self._drainer = self._queue, [], None
        for predict, group in _batches(waiting, self.max_rows):
            _run(predict, group)


def _run(predict: RowsFunction, group: list[tuple[np.ndarray, asyncio.Future]]) -> None:
    inputs = group[0][0] if len(group) == 1 else np.concatenate([rows for rows, _ in group])
    try:
        results = predict(inputs)
        if any(len(part) != len(inputs) for part in results):
            raise RuntimeError(f"the model answered {[len(part) for part in results]} rows for {len(inputs)}")
    except Exception as error:  # every request of the batch gets the error, none is left waiting
        for _, future in group:
            if not future.done():
                future.set_exception(error)
        return
    start = 0
    for rows, future in group:
        if not future.done():  # a client that went away cancelled its future
            future.set_result(tuple(part[start : start + len(rows)] for part in results))
        start += len(rows)


def _batches(
    waiting: list[tuple[RowsFunction, np.ndarray, asyncio.Future]], max_rows: int
) -> list[tuple[RowsFunction, list[tuple[np.ndarray, asyncio.Future]]]]:
    """Group by predictor (first come, first served), and cut groups at `max_rows` rows."""
    groups: dict[int, tuple[RowsFunction, list[list[tuple[np.ndarray, asyncio.Future]]], list[int]]] = {}
    for predict, rows, future in waiting:
        _, chunks, sizes = groups.setdefault(id(predict), (predict, [[]], [0]))
        if chunks[-1] and sizes[-1] + len(rows) > max_rows:
            chunks.append([])
            sizes.append(0)
        chunks[-1].append((rows, future))
        sizes[-1] += len(rows)
    return [(predict, chunk) for predict, chunks, _ in groups.values() for chunk in chunks]
