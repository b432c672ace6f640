"""Micro-batching and the fast request checks, without a server."""

import asyncio
import json

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from components.serving.batching import MicroBatcher
from components.serving.checks import rows_v1, rows_v2
from components.serving.payloads import parse_v1


class Recorder:
    """A rows function that answers each row with its sum and remembers the batch sizes it saw."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.calls: list[int] = []

    def __call__(self, rows: np.ndarray) -> tuple:
        self.calls.append(len(rows))
        return (rows.sum(axis=1) + self.offset).tolist(), np.ones(len(rows), dtype=bool)


def run(coroutines):
    async def main():
        return await asyncio.gather(*coroutines, return_exceptions=True)

    return asyncio.run(main())


def test_concurrent_requests_share_calls_and_each_gets_its_own_rows():
    batcher, model = MicroBatcher(), Recorder()
    requests = [np.full((n, 2), float(n)) for n in range(1, 41)]
    answers = run([batcher.predict(model, rows) for rows in requests])
    assert len(model.calls) < len(requests) and sum(model.calls) == sum(len(r) for r in requests)
    for rows, (sums, mask) in zip(requests, answers):
        assert sums == rows.sum(axis=1).tolist() and len(mask) == len(rows)


def test_requests_that_arrive_over_several_turns_of_the_loop_share_a_call():
    """As gRPC calls do: each reaches the model some turns of the event loop after the last."""
    batcher, model = MicroBatcher(patience=4), Recorder()

    async def later(turns: int):
        for _ in range(turns):
            await asyncio.sleep(0)
        return await batcher.predict(model, np.ones((1, 2)))

    answers = run([later(3 * i) for i in range(5)])
    assert model.calls == [5] and all(a[0] == [2.0] for a in answers)
    model.calls.clear()
    run([later(10 * i) for i in range(3)])  # more quiet turns than its patience: separate calls
    assert model.calls == [1, 1, 1]
    model.calls.clear()
    run([later(3 * i) for i in range(10)])  # still coming after max_turns: the window closes anyway
    assert len(model.calls) > 1 and sum(model.calls) == 10


def test_each_turn_of_the_wait_offers_the_core_to_the_servers_other_threads(monkeypatch):
    """gRPC's poller threads read the requests that would join the batch: the loop must not
    keep the core from them while it waits."""
    turns: list[int] = []
    batcher, model = MicroBatcher(patience=4), Recorder()
    monkeypatch.setattr("components.serving.batching._yield_core", lambda: turns.append(len(model.calls)))
    run([batcher.predict(model, np.ones((1, 2)))])
    assert model.calls == [1] and turns == [0] * 5  # every turn of the wait, before the model call


def test_a_request_alone_is_answered_at_once_and_versions_are_never_mixed():
    batcher, old, new = MicroBatcher(), Recorder(0.0), Recorder(1000.0)
    (alone,) = run([batcher.predict(old, np.ones((1, 2)))])
    assert alone[0] == [2.0] and old.calls == [1]
    answers = run([batcher.predict(old if i % 2 else new, np.ones((1, 2))) for i in range(10)])
    assert [a[0][0] for a in answers] == [1002.0 if i % 2 == 0 else 2.0 for i in range(10)]
    assert sum(old.calls) == 6 and sum(new.calls) == 5


def test_batches_are_cut_at_max_rows_and_errors_reach_every_request_of_their_batch():
    batcher, model = MicroBatcher(max_rows=10), Recorder()
    run([batcher.predict(model, np.ones((4, 2))) for _ in range(6)])
    assert max(model.calls) <= 10

    def broken(rows):
        raise RuntimeError("model failed")

    outcomes = run([MicroBatcher().predict(broken, np.ones((1, 2))) for _ in range(5)])
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_answers_of_the_wrong_length_are_an_error_not_a_misalignment():
    outcomes = run([MicroBatcher().predict(lambda rows: ([1.0],), np.ones((3, 2)))])
    assert isinstance(outcomes[0], RuntimeError)


@pytest.mark.parametrize("instances", [[[1, 2]], [[1.5, -2.25], [0, 1e30]], [[3, 4]] * 500])
def test_the_fast_v1_path_matches_payloads(instances):
    np.testing.assert_array_equal(rows_v1({"instances": instances}, 2), parse_v1({"instances": instances}, 2))


@pytest.mark.parametrize(
    "instances, message",
    [
        ([[1, "2"]], 'holds "2", not a number'),
        ([[True, 2]], "holds true, not a number"),
        ([[1, None]], "holds null, not a number"),
        ([[1, float("nan")]], "only finite numbers"),
        ([[1, 2, 3]], "must be a list of 2 numbers"),
        ([[1, 2], [3]], r"instances\[1\] must be a list of 2 numbers"),
        (["ab"], "must be a list of 2 numbers"),
        ([{"a": 1, "b": 2}], "must be a list of 2 numbers"),
        ([3], "must be a list of 2 numbers"),
        ([None], "must be a list of 2 numbers"),
        ([[[1], [2]]], r"holds \[1\], not a number"),
        ([[1e39, 2]], "beyond the float32 range"),
        ([[10**400, 2]], "too large to be a floating-point number"),
        ([], "empty"),
    ],
)
def test_the_fast_v1_path_refuses_what_payloads_refuses_and_more(instances, message):
    with pytest.raises(InvalidInput, match=message):
        rows_v1({"instances": instances}, 2)


def v2_request(data, shape=(1, 2), datatype="FP64", name="pairs") -> InferRequest:
    return InferRequest("sum", [InferInput(name, list(shape), datatype, data)])


def test_v2_data_flat_nested_or_binary():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    for data in ([1, 2, 3, 4], [[1, 2], [3, 4]], np.array([1, 2, 3, 4], dtype=np.float32)):
        np.testing.assert_array_equal(rows_v2(v2_request(data, (2, 2)), "pairs", 2), expected)


@pytest.mark.parametrize(
    "data, shape, message",
    [
        ([[[1], [2]]], (1, 2), "must be a row of 2 numbers"),
        (json.loads("[" * 900 + "1" + "]" * 900), (1, 2), "must be a row of 2 numbers"),
        ([1, 2], (2, 2), "values but shape"),
        ([1e39, 1], (1, 2), "beyond the float32 range"),
        ([10**400, 1], (1, 2), "too large"),
        ([1, 2], "12", "shape must be a list of integers"),
    ],
)
def test_v2_refusals(data, shape, message):
    request = v2_request(data, shape) if not isinstance(shape, str) else v2_request(data)
    if isinstance(shape, str):
        request.inputs[0]._shape = shape  # what the binary extension's JSON header can carry
    with pytest.raises(InvalidInput, match=message):
        rows_v2(request, "pairs", 2)
