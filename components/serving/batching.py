"""Server-side micro-batching: the rows of concurrent requests go through the model in one call.

A TensorFlow call costs about half a millisecond whether it gets one row or a few thousand, and
so do, per call, the envelope check, the metrics and a traffic log record. Under concurrent load
the server would spend most of its time on that per-call overhead. Requests hand their checked
rows to a `MicroBatcher` and wait; one drain task takes everything queued, runs it through the
rows function in a worker thread (the event loop keeps reading requests meanwhile), and hands
each request its own slice of every part of the answer.

Nothing waits on a timer: a request that arrives when the model is idle runs at once, alone.
Batches form only from requests that arrived while the previous call was running, so batching
adds no latency when the server is quiet. Rows for different predictors (versions) are never
mixed: each request is answered by the version it started with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# rows [n, k] -> a tuple of per-row results, each a list or array of length n
RowsFunction = Callable[[np.ndarray], tuple]


class MicroBatcher:
    def __init__(self, max_rows: int = 8192) -> None:
        self.max_rows = max_rows
        # one model call at a time, always on the same thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._queue: list[tuple[RowsFunction, np.ndarray, asyncio.Future]] = []
        self._draining = False
        self._drainer: asyncio.Task | None = None  # referenced, so the running task is not collected
        self.calls = 0
        self.requests = 0

    async def predict(self, predict: RowsFunction, inputs: np.ndarray) -> tuple:
        """`predict(inputs)`, possibly computed together with other requests' rows: each part of
        the result tuple, cut to this request's rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.append((predict, inputs, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                waiting, self._queue = self._queue, []
                for predict, group in _batches(waiting, self.max_rows):
                    await self._run(predict, group)
        finally:
            self._draining = False

    async def _run(self, predict: RowsFunction, group: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        inputs = group[0][0] if len(group) == 1 else np.concatenate([rows for rows, _ in group])
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, predict, inputs)
            if any(len(part) != len(inputs) for part in results):
                raise RuntimeError(f"the model answered {[len(part) for part in results]} rows for {len(inputs)}")
        except Exception as error:  # every request of the batch gets the error, none is left waiting
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        self.calls += 1
        self.requests += len(group)
        start = 0
        for rows, future in group:
            if not future.done():  # a client that went away cancelled its future
                future.set_result(tuple(part[start:start + len(rows)] for part in results))
            start += len(rows)


def _batches(waiting: list[tuple[RowsFunction, np.ndarray, asyncio.Future]],
             max_rows: int) -> list[tuple[RowsFunction, list[tuple[np.ndarray, asyncio.Future]]]]:
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
