"""KFP components of the monitoring pipeline."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def collect_traffic(
    model_name: str,
    window_minutes: float,
    store_endpoint: str,
    training_data: Output[Dataset],
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
    print(
        f"{model_name} version {data.version}: {len(data.traffic_inputs)} logged rows in the last "
        f"{window_minutes:g} minutes",
        flush=True,
    )
    return len(data.traffic_inputs)


# plan_retraining's return annotation is spelled inline and its body returns a plain tuple: kfp runs
# the function's own source in a module of its own, where a class defined beside it does not exist
# (NameError), and importing this module there fails (the executor's kfp.dsl has no `component`).


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def plan_retraining(
    training_data: Input[Dataset],
    traffic: Input[Dataset],
) -> NamedTuple(  # type: ignore[valid-type]
    "RetrainingPlan", [("low", float), ("high", float), ("input_scale", float), ("target_scale", float)]
):
    """A training range covering everything seen, and the scaling that goes with it.

    Args:
        training_data: The inputs the served version was trained on.
        traffic: The inputs it was asked.
    """
    import numpy as np

    from components.monitor.traffic import covering_range

    with np.load(training_data.path) as reference, np.load(traffic.path) as current:
        low, high = covering_range(reference["inputs"], current["inputs"])
    scale = max(abs(low), abs(high))
    print(f"retraining on [{low:g}, {high:g}]", flush=True)
    return low, high, scale, 2 * scale  # a plain tuple: this module's own imports fail in the executor


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def collect_served_queries(
    model_name: str,
    window_minutes: float,
    store_endpoint: str,
    queries: Output[Dataset],
    training_data: Output[Dataset],
) -> int:
    """Fetch the served version's logged queries with the answers it gave, and its training data.

    Args:
        model_name: The served model to monitor.
        window_minutes: How far back to read the traffic log.
        store_endpoint: Object store host:port; empty means the MINIO_ENDPOINT of the pod.
        queries: Inputs, served outputs, request times (npz) and the card's held-out MAE.
        training_data: The served version's training data as stored beside it (empty if none).
    """
    import datetime as dt
    import math

    import numpy as np

    from components.monitor.accuracy import read_served
    from components.store.model_registry import MODEL_BUCKET, read_card, serving_version
    from components.store.object_store import ObjectStore

    if window_minutes <= 0:
        raise ValueError(f"window_minutes must be positive, got {window_minutes}")
    store = ObjectStore.from_env(endpoint=store_endpoint)
    store.ensure_bucket(MODEL_BUCKET)
    version = serving_version(store, model_name)
    if version is None:
        raise LookupError(f"no {model_name} model is served: nothing to monitor")
    card = read_card(store, model_name, version)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=window_minutes)
    served = read_served(store, model_name, version, since)
    heldout = float(card.metrics.get("mae", math.nan))
    with open(queries.path, "wb") as f:
        np.savez(
            f,
            inputs=served.inputs,
            outputs=served.outputs,
            seconds=served.seconds,
            heldout_mae=heldout,
            version=version,
        )
    queries.metadata.update({"model": model_name, "version": version, "rows": len(served.inputs)})
    raw = b""
    if card.training_data_uri:
        bucket, _, key = card.training_data_uri.removeprefix("s3://").partition("/")
        raw = store.get_bytes(bucket, key)
    with open(training_data.path, "wb") as f:
        f.write(raw)
    print(
        f"{model_name} version {version}: {len(served.inputs)} logged queries with answers in the last "
        f"{window_minutes:g} minutes; held-out MAE in its card: {heldout:.4g}",
        flush=True,
    )
    return len(served.inputs)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def sample_served_queries(
    model_name: str,
    queries: Input[Dataset],
    sample_size: int,
    map_cells: int,
    time_slices: int,
    seed: int,
    sample: Output[Dataset],
) -> int:
    """Draw a sample of the logged queries, stratified over request time and cells of the model's plane.

    Args:
        model_name: The model whose spec names the plane (three-body: x2x, x2y; sum: x, y).
        queries: The logged queries from `collect_served_queries`.
        sample_size: Rows to label; spread evenly over the non-empty strata.
        map_cells: Cells per axis of the plane (map_cells x map_cells regions).
        time_slices: Equal slices of the window's request times.
        seed: Random seed of the draw.
        sample: The sampled rows with their stratum, weight and the plane's bounds (npz).
    """
    import numpy as np

    from components.monitor.accuracy import column_indices, plane_bounds, plane_cells, stratified_sample
    from components.monitor.accuracy import time_slices as slice_of
    from components.registry import model_spec

    spec = model_spec(model_name)
    if spec.labelling is None:
        raise ValueError(f"model {model_name} has no labelling: its live accuracy cannot be measured")
    with np.load(queries.path) as data:
        logged = {key: data[key] for key in data.files}
    plane = logged["inputs"][:, column_indices(spec, spec.labelling.plane)]
    bounds = plane_bounds(spec.labelling, plane)
    cells = plane_cells(plane, bounds, map_cells)
    slices = slice_of(logged["seconds"], time_slices)
    chosen, weights = stratified_sample(slices * map_cells * map_cells + cells, sample_size, seed)
    with open(sample.path, "wb") as f:
        np.savez(
            f,
            inputs=logged["inputs"][chosen],
            outputs=logged["outputs"][chosen],
            seconds=logged["seconds"][chosen],
            weights=weights,
            cells=cells[chosen],
            slices=slices[chosen],
            bounds=np.asarray(bounds),
            map_cells=map_cells,
            heldout_mae=logged["heldout_mae"],
            version=logged["version"],
            logged_rows=len(plane),
        )
    print(
        f"sampled {len(chosen)} of {len(plane)} logged rows over {len(np.unique(cells))} cells and "
        f"{len(np.unique(slices))} time slices",
        flush=True,
    )
    return len(chosen)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def label_served_queries(model_name: str, sample: Input[Dataset], labelled: Output[Dataset]) -> int:
    """Compute the true answer of every sampled query with the model's own labelling (its spec).

    Args:
        model_name: The model whose spec computes the truth (sum: x + y; three-body: the simulator).
        sample: The sampled queries from `sample_served_queries`.
        labelled: The sample with `truth`, `labelled` (False: the truth could not be computed) and the cost.
    """
    import time

    import numpy as np

    from components.registry import model_spec

    spec = model_spec(model_name)
    if spec.labelling is None:
        raise ValueError(f"model {model_name} has no labelling: its live accuracy cannot be measured")
    with np.load(sample.path) as data:
        rows = {key: data[key] for key in data.files}
    started = time.perf_counter()
    result = spec.labelling.label(rows["inputs"])
    seconds = time.perf_counter() - started
    with open(labelled.path, "wb") as f:
        np.savez(
            f,
            **rows,
            truth=result.outputs,
            labelled=result.labelled,
            computations=result.computations,
            label_seconds=seconds,
        )
    rate = f"{result.computations / seconds:.1f} per second" if seconds > 0 and result.computations else "n/a"
    print(
        f"labelled {int(result.labelled.sum())}/{len(result.labelled)} rows with {result.computations} truth "
        f"computations in {seconds:.2f} s ({rate}); {int((~result.labelled).sum())} could not be labelled",
        flush=True,
    )
    return int(result.labelled.sum())


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def report_live_accuracy(
    model_name: str,
    labelled: Input[Dataset],
    tolerance: float,
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
    weak_regions: Output[Dataset],
) -> bool:
    """Score the served answers against the truth: live MAE overall, by time and by region, beside the
    held-out MAE; True when the live MAE exceeds it by more than the tolerance (retrain).

    Args:
        model_name: The monitored model.
        labelled: The labelled sample from `label_served_queries`.
        tolerance: Retrain when live MAE > held-out MAE x (1 + tolerance); also marks the weak cells.
        metrics: Live MAE overall, by slice, cell and time window; the held-out MAE; counts.
        report: HTML with the error map over the plane and the tables.
        summary: The same findings in Markdown.
        weak_regions: The weak cells' boxes and the labelled queries (npz), for a targeted retraining.
    """
    import math
    from pathlib import Path

    import numpy as np

    from components.monitor.accuracy import (
        cell_box,
        column_indices,
        error_map,
        exceeds,
        live_accuracy,
        report_html,
        report_markdown,
        summary_lines,
        weak_cells,
    )
    from components.registry import model_spec

    spec = model_spec(model_name)
    labelling = spec.labelling
    if labelling is None:
        raise ValueError(f"model {model_name} has no labelling")
    with np.load(labelled.path) as data:
        rows = {key: data[key] for key in data.files}
    cells = int(rows["map_cells"])
    bounds = (
        (float(rows["bounds"][0][0]), float(rows["bounds"][0][1])),
        (float(rows["bounds"][1][0]), float(rows["bounds"][1][1])),
    )
    heldout = float(rows["heldout_mae"])
    reference = None if math.isnan(heldout) else heldout
    accuracy = live_accuracy(
        spec,
        rows["inputs"],
        rows["outputs"],
        rows["truth"],
        rows["labelled"],
        rows["weights"],
        rows["slices"],
        rows["cells"],
    )
    retrain = exceeds(accuracy.mae, reference, tolerance)
    weak = weak_cells(accuracy, reference, tolerance) if retrain else []
    lines = summary_lines(
        model_name,
        accuracy,
        reference,
        retrain,
        weak,
        cells,
        bounds,
        labelling,
        int(rows["computations"]),
        float(rows["label_seconds"]),
    )
    for key, value in accuracy.metrics(reference, cells).items():
        metrics.log_metric(key, value)
    metrics.log_metric("labelling_computations", float(rows["computations"]))
    metrics.log_metric("labelling_seconds", float(rows["label_seconds"]))
    metrics.log_metric("retrain", float(retrain))
    plane = rows["inputs"][:, column_indices(spec, labelling.plane)]
    svg = error_map(
        f"{model_name}: live MAE by region (version {rows['version']})",
        labelling.plane,
        bounds,
        cells,
        accuracy.by_cell,
        plane,
        accuracy.row_errors,
        reference,
    )
    Path(report.path).write_text(report_html(model_name, lines, accuracy, cells, bounds, labelling, svg))
    Path(summary.path).write_text(report_markdown(lines, accuracy, cells, bounds, labelling))
    boxes = np.asarray([cell_box(c, cells, bounds) for c in weak]).reshape(-1, 2, 2)
    with open(weak_regions.path, "wb") as f:
        np.savez(
            f,
            boxes=boxes,
            inputs=rows["inputs"],
            labelled=rows["labelled"],
            errors=accuracy.row_errors,
            truth=rows["truth"],
        )
    print("\n".join(lines), flush=True)
    return retrain
