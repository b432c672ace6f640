"""The pipelines the CLI knows, and what it needs of each besides the compiled spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import compiler
from kfp.dsl.graph_component import GraphComponent

from components.registry import model_spec
from pipelines.local_run import LocalRun
from pipelines.params import check_shared, parse_params

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def _no_checks(params: Mapping[str, Any]) -> None:
    """A pipeline with no parameters of its own beyond the shared ones and its model's."""


@dataclass(frozen=True)
class PipelineEntry:
    """A pipeline, the model whose spec checks its parameters (if any) and its run summary."""

    pipeline: GraphComponent
    summarize: Callable[[Mapping[str, Any], LocalRun], str]
    model: str | None = None
    check_own: Callable[[Mapping[str, Any]], None] = _no_checks

    def validate(self, params: Mapping[str, Any]) -> None:
        """Fail on bad parameters before any container or training starts."""
        check_shared(params)
        self.check_own(params)
        if self.model:
            model_spec(self.model).validate_params(params)

    @property
    def presets(self) -> Mapping[str, Mapping[str, Any]]:
        return model_spec(self.model).presets if self.model else {}

    def params(self, pairs: list[str], preset: str | None = None) -> dict[str, Any]:
        """The run's parameters: defaults, then the preset, then `k=v` overrides (not yet validated)."""
        return parse_params(self.pipeline, pairs, self.presets, preset)


# Each pipeline's module is imported only when that pipeline is asked for: defining a pipeline
# traces it with kfp (about a second each), and `run three-body` needs one of the three.
def _sum() -> PipelineEntry:
    from pipelines import sum as module

    return PipelineEntry(module.sum_pipeline, module.summarize, model="sum")


def _three_body() -> PipelineEntry:
    from pipelines import three_body

    return PipelineEntry(three_body.three_body_pipeline, three_body.summarize, model="three-body")


def _monitor() -> PipelineEntry:
    from pipelines import monitor

    return PipelineEntry(monitor.monitor_pipeline, monitor.summarize, check_own=monitor.validate_params)


_ENTRIES: dict[str, Callable[[], PipelineEntry]] = {"sum": _sum, "three-body": _three_body, "monitor": _monitor}


def pipeline_names() -> list[str]:
    return list(_ENTRIES)


def entry(name: str) -> PipelineEntry:
    if name not in _ENTRIES:
        raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(pipeline_names())}")
    return _ENTRIES[name]()


def registry() -> dict[str, PipelineEntry]:
    """Every pipeline (imports them all)."""
    return {name: entry(name) for name in _ENTRIES}


def compiled_path(name: str) -> Path:
    return COMPILED_DIR / f"{name}.yaml"


def compile_all(names: list[str] | None = None, out_dir: Path = COMPILED_DIR) -> list[Path]:
    """Compile the named pipelines (all by default) to <out_dir>/<name>.yaml."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in _ENTRIES:
        if names and name not in names:
            continue
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(entry(name).pipeline, str(path))
        written.append(path)
    return written
