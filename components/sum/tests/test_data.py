import numpy as np
import pytest

from components.sum.data import SumDataSpec, data_hash, generate, load, save, summary


def test_seed_equal_pairs_is_exactly_the_article_data():
    inputs, targets = generate(SumDataSpec(recipe="seed-equal-pairs"))
    expected = np.concatenate([[1.0], np.arange(3, 10000, 2)])
    assert inputs.shape == (5000, 2)
    np.testing.assert_array_equal(inputs[:, 0], expected)
    np.testing.assert_array_equal(inputs[:, 1], expected)
    np.testing.assert_array_equal(targets, 2 * expected)
    assert summary(inputs)["xy_correlation"] == pytest.approx(1.0)


def test_uniform_is_seeded_independent_and_in_range():
    spec = SumDataSpec(size=4000, low=0, high=10000, small_fraction=0.1, seed=7)
    inputs, targets = generate(spec)
    again, _ = generate(spec)
    np.testing.assert_array_equal(inputs, again)
    np.testing.assert_allclose(targets, inputs.sum(axis=1))
    assert inputs.min() >= 0 and inputs.max() <= 10000
    assert abs(summary(inputs)["xy_correlation"]) < 0.3  # small pairs are small together, mildly
    assert (inputs.max(axis=1) < 10).sum() >= 40  # small numbers are represented


def test_small_fraction_zero_is_plain_uniform():
    inputs, _ = generate(SumDataSpec(size=4000, small_fraction=0.0, low=5000, high=6000))
    assert inputs.min() >= 5000
    assert abs(summary(inputs)["xy_correlation"]) < 0.05


@pytest.mark.parametrize(
    "spec, message",
    [
        (SumDataSpec(recipe="gaussian"), "unknown recipe 'gaussian'"),
        (SumDataSpec(size=-1), "size must be positive"),
        (SumDataSpec(low=10, high=10), "low < high"),
        (SumDataSpec(small_fraction=1.5), "small_fraction"),
        (SumDataSpec(low=-5, high=5), "small_fraction needs low >= 0"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        generate(spec)


def test_save_load_and_hash(tmp_path):
    inputs, targets = generate(SumDataSpec(size=10))
    save(tmp_path / "d.npz", inputs, targets)
    loaded_inputs, loaded_targets = load(tmp_path / "d.npz")
    assert data_hash(loaded_inputs, loaded_targets) == data_hash(inputs, targets)
    assert data_hash(inputs, targets) != data_hash(inputs, targets + 1)
