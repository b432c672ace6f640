"""The monitor's parameters are checked before any work starts."""

import pytest

from pipelines.registry import registry


def _params(**overrides):
    entry = registry()["monitor"]
    return entry, {**entry.params([]), **overrides}


def test_the_defaults_monitor_sum_and_pass():
    entry, params = _params()
    assert params["model"] == "sum"
    entry.validate(params)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model", "cubic", "model must be one of sum, three-body"),
        ("sample_size", 0, "sample_size must be positive"),
        ("validation_fraction", 1.0, "validation_fraction"),
        ("t_max", 11.0, "t_max"),
        ("spread", 0.0, "spread positive"),
    ],
)
def test_bad_values_are_refused(key, value, message):
    entry, params = _params(**{key: value})
    with pytest.raises(ValueError, match=message):
        entry.validate(params)
