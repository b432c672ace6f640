"""Judge a sum model on held-out data from the serving distribution and on the article's queries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

# The article's seven queries and the answers its skew-trained model published.
ARTICLE_QUERIES: tuple[tuple[float, float, float], ...] = (
    (2000.0, 3000.0, 4857.666992),
    (4.0, 5.0, 9.347977),
    (10.0, 10000.0, 8958.944336),
    (1000000.0, 4.0, 1318969.375),
    (4.0, 1000000.0, 895098.75),
    (0.1, 0.1, 0.724608),
    (0.01, 0.01, 0.549576),
)


@dataclass(frozen=True)
class QueryResult:
    x: float
    y: float
    predicted: float
    true_sum: float
    article: float

    @property
    def abs_error(self) -> float:
        return abs(self.predicted - self.true_sum)


@dataclass(frozen=True)
class SumEvaluation:
    mae: float
    relative_mae: float
    rmse: float
    max_relative_error: float
    rows: int
    queries: tuple[QueryResult, ...]

    def metrics(self) -> dict[str, float]:
        return {
            "mae": self.mae,
            "relative_mae": self.relative_mae,
            "rmse": self.rmse,
            "max_relative_error": self.max_relative_error,
            "eval_rows": float(self.rows),
        }


def evaluate(predict: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, targets: np.ndarray) -> SumEvaluation:
    """Relative MAE (MAE over the mean |sum|) is the scale-free score the gate uses; the max
    relative error is taken against max(|sum|, 1) so that sums near zero do not explode it."""
    if len(inputs) == 0:
        raise ValueError("evaluation data is empty")
    errors = predict(inputs) - targets
    queries = np.array([[x, y] for x, y, _ in ARTICLE_QUERIES])
    answers = predict(queries)
    return SumEvaluation(
        mae=float(np.mean(np.abs(errors))),
        relative_mae=float(np.mean(np.abs(errors)) / max(float(np.mean(np.abs(targets))), 1e-12)),
        rmse=float(np.sqrt(np.mean(errors**2))),
        max_relative_error=float(np.max(np.abs(errors) / np.maximum(np.abs(targets), 1.0))),
        rows=len(inputs),
        queries=tuple(
            QueryResult(x, y, float(p), x + y, article) for (x, y, article), p in zip(ARTICLE_QUERIES, answers)
        ),
    )


def query_table(queries: tuple[QueryResult, ...], model_label: str = "this model") -> str:
    lines = [f"| query | {model_label} | true sum | abs error | article's model |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {q.x:g} + {q.y:g} | {q.predicted:,.4f} | {q.true_sum:,.4f} | {q.abs_error:,.4f} | {q.article:,.4f} |"
        for q in queries
    ]
    return "\n".join(lines)


def report_markdown(evaluation: SumEvaluation, title: str, decision: str, champion: SumEvaluation | None = None) -> str:
    names = evaluation.metrics()
    champion_metrics = champion.metrics() if champion else {}
    rows = "\n".join(
        f"| {k} | {v:,.6g} | {champion_metrics[k]:,.6g} |" if champion else f"| {k} | {v:,.6g} | - |"
        for k, v in names.items()
    )
    return (
        f"# {title}\n\n**Decision:** {decision}\n\n## Held-out data (serving distribution)\n\n"
        f"| metric | challenger | champion |\n|---|---:|---:|\n{rows}\n\n## The article's queries\n\n"
        f"{query_table(evaluation.queries)}\n"
    )


def as_dict(evaluation: SumEvaluation) -> dict[str, object]:
    return {**evaluation.metrics(), "queries": [asdict(q) for q in evaluation.queries]}
