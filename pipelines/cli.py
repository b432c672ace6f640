"""`python -m pipelines compile | run NAME [--param k=v] | submit NAME | schedule NAME | stop`."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import compiler

from pipelines import kfp_submit, local_env

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


@dataclass(frozen=True)
class PipelineEntry:
    pipeline: Any  # a kfp GraphComponent
    validate: Callable[[dict[str, Any]], None]
    summarize: Callable[[dict[str, Any], Path], str]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


def registry() -> dict[str, PipelineEntry]:
    from pipelines import monitor, three_body
    from pipelines import sum as sum_module

    return {
        "sum": PipelineEntry(sum_module.sum_pipeline, sum_module.validate_params, sum_module.summarize),
        "three-body": PipelineEntry(three_body.three_body_pipeline, three_body.validate_params,
                                    three_body.summarize, three_body.PRESETS),
        "monitor": PipelineEntry(monitor.monitor_pipeline, monitor.validate_params, monitor.summarize),
    }


def compiled_path(name: str) -> Path:
    return COMPILED_DIR / f"{name}.yaml"


def compile_all(names: list[str] | None = None, out_dir: Path = COMPILED_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in registry().items():
        if names and name not in names:
            continue
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(entry.pipeline, str(path))
        written.append(path)
    return written


def defaults(entry: PipelineEntry) -> dict[str, Any]:
    signature = inspect.signature(entry.pipeline.pipeline_func)
    return {name: p.default for name, p in signature.parameters.items()}


def parse_params(entry: PipelineEntry, pairs: list[str], preset: str | None = None) -> dict[str, Any]:
    """Typed `k=v` overrides on top of a preset and the pipeline's defaults; unknown names are an error."""
    params = defaults(entry)
    if preset is not None:
        if preset not in entry.presets:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(entry.presets) or 'none'}")
        params.update(entry.presets[preset])
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--param {pair!r}: expected k=v")
        if key not in params:
            raise ValueError(f"unknown parameter {key!r}; known: {', '.join(params)}")
        kind = type(params[key])
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false"):
                    raise ValueError
                params[key] = raw.lower() == "true"
            else:
                params[key] = kind(raw)
        except ValueError:
            raise ValueError(f"parameter {key}={raw!r} is not a valid {kind.__name__}") from None
    return params


def run_locally(name: str, params: dict[str, Any]) -> Path:
    """Run the compiled pipeline with kfp's local runner against the embedded services."""
    import warnings

    from kfp import components, local

    # The local runner executes in this venv, not the images, and ignores display names: expected.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom")
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
    local_env.ensure_store()
    local_env.ensure_model_server()
    root = local_env.STATE_DIR / "pipeline-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    before = set(root.glob(f"{name}-*")) if root.exists() else set()
    components.load_component_from_file(str(compiled_path(name)))(**params)
    runs = sorted(set(root.glob(f"{name}-*")) - before)
    return runs[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser("compile", help="write pipelines/compiled/<name>.yaml")
    compile_cmd.add_argument("names", nargs="*")
    run_cmd = commands.add_parser("run", help="run a compiled pipeline locally with kfp's local runner")
    run_cmd.add_argument("name")
    run_cmd.add_argument("--param", action="append", default=[], metavar="K=V")
    run_cmd.add_argument("--preset", help="a named set of parameters, e.g. three-body's local or paper")
    commands.add_parser("stop", help="stop the local object store and model server")
    kfp_submit.add_cli(commands)
    args = parser.parse_args(argv)

    if args.command == "compile":
        for path in compile_all(args.names):
            print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        return 0
    if args.command in ("submit", "schedule"):
        return kfp_submit.handle(args)
    if args.command == "stop":
        stopped = local_env.stop()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0

    pipelines = registry()
    if args.name not in pipelines:
        parser.error(f"unknown pipeline {args.name!r}; known: {', '.join(pipelines)}")
    entry = pipelines[args.name]
    try:
        params = parse_params(entry, args.param, args.preset)
        entry.validate(params)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not compiled_path(args.name).exists():
        compile_all([args.name])
    run_dir = run_locally(args.name, params)
    print(entry.summarize(params, run_dir))
    return 0


def task_outputs(run_dir: Path, task: str) -> dict[str, Any]:
    """A finished local task's executor output (parameters and artifact metadata)."""
    path = run_dir / task / "executor_output.json"
    return json.loads(path.read_text()) if path.exists() else {}


def artifact_path(run_dir: Path, task: str, artifact: str) -> Path:
    return Path(task_outputs(run_dir, task)["artifacts"][artifact]["artifacts"][0]["uri"])


def artifact_metadata(run_dir: Path, task: str, artifact: str) -> dict[str, Any]:
    return task_outputs(run_dir, task)["artifacts"][artifact]["artifacts"][0]["metadata"]


def validation_verdict(run_dir: Path) -> str:
    """The head of the data-validation report: verdict and reasons, without the full table."""
    return artifact_path(run_dir, "validate-data", "summary").read_text().split("## Checks")[0].strip()
