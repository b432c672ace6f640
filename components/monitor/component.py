"""KFP components of the monitoring pipeline."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def collect_traffic(
    model_name: str, window_minutes: float, store_endpoint: str, training_data: Output[Dataset],
    traffic: Output[Dataset],
) -> int:
    """Fetch the served version's training inputs and its logged traffic; returns the traffic rows.

    Args:
        model_name: The served model to monitor.
        window_minutes: How far back to read the traffic log.
        store_endpoint: Object store host:port; empty means the MINIO_ENDPOINT of the pod.
        training_data: The inputs the served version was trained on.
        traffic: The inputs it was asked in the window.
    """
    import datetime as dt

    import numpy as np

    from components.monitor.traffic import collect
    from components.store.object_store import ObjectStore

    if window_minutes <= 0:
        raise ValueError(f"window_minutes must be positive, got {window_minutes}")
    data = collect(ObjectStore.from_env(endpoint=store_endpoint), model_name, dt.timedelta(minutes=window_minutes))
    with open(training_data.path, "wb") as f:
        np.savez(f, inputs=data.training_inputs)
    with open(traffic.path, "wb") as f:
        np.savez(f, inputs=data.traffic_inputs.reshape(-1, data.training_inputs.shape[1]))
    traffic.metadata.update({"model": model_name, "version": data.version, "rows": len(data.traffic_inputs)})
    print(f"{model_name} version {data.version}: {len(data.traffic_inputs)} logged rows in the last "
          f"{window_minutes:g} minutes", flush=True)
    return len(data.traffic_inputs)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def plan_retraining(
    training_data: Input[Dataset], traffic: Input[Dataset],
) -> NamedTuple(  # type: ignore[valid-type]  # KFP reads its outputs from this form
    "RetrainingPlan", [("low", float), ("high", float), ("input_scale", float), ("target_scale", float)]
):
    """A training range covering everything seen, and the scaling that goes with it.

    Args:
        training_data: The inputs the served version was trained on.
        traffic: The inputs it was asked.
    """
    from collections import namedtuple

    import numpy as np

    from components.monitor.traffic import covering_range

    with np.load(training_data.path) as reference, np.load(traffic.path) as current:
        low, high = covering_range(reference["inputs"], current["inputs"])
    scale = max(abs(low), abs(high))
    print(f"retraining on [{low:g}, {high:g}]", flush=True)
    RetrainingPlan = namedtuple("RetrainingPlan", "low high input_scale target_scale")
    return RetrainingPlan(low, high, scale, 2 * scale)
