"""KFP component comparing two datasets for skew or drift: a report people read and one gate value."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(
    reference: Input[Dataset], current: Input[Dataset], feature_names: str, title: str, alpha: float,
    summary: Output[Markdown], report: Output[HTML], metrics: Output[Metrics],
) -> bool:
    """True when no skew or drift is found; both inputs are .npz files with an `inputs` array."""
    from pathlib import Path

    import numpy as np

    from components.validation.drift import DriftThresholds, compare
    from components.validation.report import render_html, render_markdown

    with np.load(reference.path) as ref, np.load(current.path) as cur:
        ref_inputs, cur_inputs = ref["inputs"], cur["inputs"]
    names = [name.strip() for name in feature_names.split(",")]
    result = compare(ref_inputs, cur_inputs, names, DriftThresholds(alpha=alpha))
    Path(summary.path).write_text(render_markdown(result, ref_inputs, cur_inputs, names, title))
    Path(report.path).write_text(render_html(result, ref_inputs, cur_inputs, names, title))
    metrics.log_metric("drift_detected", float(result.drift_detected))
    metrics.log_metric("failed_checks", float(len(result.reasons)))
    for reason in result.reasons:
        print("DRIFT:", reason, flush=True)
    return not result.drift_detected
