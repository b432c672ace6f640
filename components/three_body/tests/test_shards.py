"""Shards give what one process gives: the same initial conditions, trajectories and split."""

import tracemalloc

import numpy as np
import pytest

from components.three_body import dataset
from components.three_body.shards import Shard, gather, load_shard, save_shard, shard_starts, simulate_shard
from components.three_body.simulate import Status, sample_initial_x2, simulate

SIMULATIONS, T_MAX, SEED = 7, 0.5, 3


def test_shard_starts_cover_every_simulation_once():
    assert shard_starts(7, 3) == [0, 3, 6]
    assert shard_starts(6, 10) == [0]
    for bad in ((0, 3), (5, 0)):
        with pytest.raises(ValueError, match="must be positive"):
            shard_starts(*bad)


def test_sharded_simulation_equals_one_process(tmp_path):
    x2 = sample_initial_x2(SIMULATIONS, SEED)
    rows = dataset.to_rows(simulate(x2, T_MAX), x2)
    expected_train, expected_validation = (
        rows.subset(ids) for ids in dataset.split_by_simulation(rows.simulation, 0.3, SEED)
    )

    shards = []
    for start in reversed(shard_starts(SIMULATIONS, 3)):  # gathered in any order
        save_shard(tmp_path / f"{start}.npz", simulate_shard(start, 3, SIMULATIONS, T_MAX, SEED))
        shards.append(load_shard(tmp_path / f"{start}.npz"))
    gathered = gather(shards, 0.3, SEED)

    for got, want in ((gathered.training, expected_train), (gathered.validation, expected_validation)):
        np.testing.assert_array_equal(got.simulation, want.simulation)
        np.testing.assert_array_equal(got.inputs, want.inputs)
        # Equal to the last bits: numpy's SIMD loops may round differently for another batch length.
        np.testing.assert_allclose(got.targets, want.targets, rtol=0, atol=1e-14)
    assert gathered.statistics["simulations"] == SIMULATIONS and gathered.statistics["shards"] == 3


def test_a_shard_outside_the_simulations_is_refused():
    with pytest.raises(ValueError, match="outside"):
        simulate_shard(7, 3, SIMULATIONS, T_MAX, SEED)


def test_the_split_does_not_reuse_the_stream_that_drew_the_initial_conditions():
    """With the bare seed the held-out runs of `make run` (seed 0, 1,901 converged of 2,000) had
    x2y from another distribution than the training runs (KS p = 0.002): the permutation read the
    same random bits as `sample_initial_x2(2000, 0)`."""
    ids = np.arange(1901)
    _, held_out = dataset.split_by_simulation(ids, 0.2, seed=0)
    reused = np.sort(np.random.default_rng(0).permutation(ids)[:380])
    assert len(held_out) == 380 and not np.array_equal(held_out, reused)


def _synthetic_shard(start: int, simulations: int, times: int) -> Shard:
    ids = np.repeat(np.arange(start, start + simulations), times)
    rows = dataset.TrajectoryRows(np.ones((len(ids), 3)), np.ones((len(ids), 4)), ids)
    ones = np.ones(simulations)
    status = np.full(simulations, Status.CONVERGED)
    return Shard(start, np.zeros((simulations, 2)), status, ones.astype(bool), ones, rows)


def test_gathering_holds_the_rows_about_twice_not_three_times():
    """The gather pod's memory limit is sized from this: the shards plus the split rows."""
    shards = [_synthetic_shard(start, 100, 1000) for start in range(0, 400, 100)]
    data_bytes = sum(a.nbytes for s in shards for a in (s.rows.inputs, s.rows.targets, s.rows.simulation))
    tracemalloc.start()
    try:
        gathered = gather(shards, 0.2, SEED)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(gathered.training.simulation) + len(gathered.validation.simulation) == 400_000
    assert peak < 1.35 * data_bytes  # the result (1x), the row masks and the joined simulation ids
