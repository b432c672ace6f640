import datetime as dt

import numpy as np
import pytest

from components.monitor.traffic import collect, covering_range


def test_covering_range_spans_training_and_traffic_with_margin():
    low, high = covering_range(np.array([[0.0, 10_000.0]]), np.array([[5.0, 1_000_000.0]]))
    assert low == 0.0 and high == pytest.approx(1_050_000.0)
    low, _ = covering_range(np.array([[-100.0, 100.0]]), np.array([[0.0, 0.0]]))
    assert low == pytest.approx(-110.0)


@pytest.mark.integration
def test_collect_explains_when_nothing_is_served(store):
    with pytest.raises(LookupError, match="no never-served model is served"):
        collect(store, "never-served", dt.timedelta(minutes=5))
