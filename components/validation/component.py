"""KFP component comparing two datasets for skew or drift: a report people read and one gate value."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(
    reference: Input[Dataset],
    current: Input[Dataset],
    feature_names: str,
    title: str,
    alpha: float,
    summary: Output[Markdown],
    report: Output[HTML],
    metrics: Output[Metrics],
    unit_column: str = "",
    see_also: str = "",
) -> bool:
    """True when no skew or drift is found.

    Args:
        reference: .npz file with an `inputs` array (rows, features): the data the model was trained on.
        current: .npz file in the same format: held-out, evaluation or served data.
        feature_names: comma-separated names of the `inputs` columns, e.g. "t,x2x,x2y".
        title: heading of the Markdown and HTML reports.
        alpha: largest accepted chance of a false alarm when both sides come from one distribution
            (family-wise over all tests, Holm).
        unit_column: name of an array in both .npz files holding the sampled unit of each row (e.g.
            "simulation"); rows of one unit are tested as one sample. Empty: rows are independent.
        see_also: a closing line of the summary and the report naming related reports, e.g. where the
            data could not be generated. Empty: none.
    """
    import html
    from pathlib import Path

    from components.validation.drift import DriftThresholds, compare, load_dataset
    from components.validation.report import render_html, render_markdown

    ref_inputs, ref_units = load_dataset(Path(reference.path), unit_column)
    cur_inputs, cur_units = load_dataset(Path(current.path), unit_column)
    names = [name.strip() for name in feature_names.split(",")]
    units = (ref_units, cur_units) if ref_units is not None and cur_units is not None else None
    result = compare(
        ref_inputs, cur_inputs, names, DriftThresholds(alpha=alpha), units=units, unit_name=unit_column or "row"
    )
    markdown = render_markdown(result, ref_inputs, cur_inputs, names, title)
    page = render_html(result, ref_inputs, cur_inputs, names, title)
    if see_also:
        markdown += f"\n**See also:** {see_also}\n"
        page = page.replace("</body>", f"<p><b>See also:</b> {html.escape(see_also)}</p></body>")
    Path(summary.path).write_text(markdown)
    Path(report.path).write_text(page)
    metrics.log_metric("drift_detected", float(result.drift_detected))
    metrics.log_metric("failed_tests", float(len(result.reasons)))
    metrics.log_metric("tests", float(len(result.tests)))
    for reason in result.reasons:
        print("DRIFT:", reason, flush=True)
    return not result.drift_detected
