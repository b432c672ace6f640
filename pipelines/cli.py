"""`python -m pipelines compile | run NAME [--param k=v] | submit NAME | schedule NAME | manifest MODEL | stop`."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.store.object_store import StoreError
from pipelines import kfp_submit, local_env, manifest
from pipelines.local_run import LocalRun

if TYPE_CHECKING:
    from pipelines.registry import PipelineEntry

# pipelines.registry is imported where it is used, and it imports a pipeline's module only when
# that pipeline is asked for: kfp builds each graph on import, seconds that `manifest`, `stop`
# and a run of another pipeline do not need.


def local_params(entry: PipelineEntry, pairs: list[str], preset: str | None = None) -> dict[str, Any]:
    """A run's parameters on this machine: the compiled defaults are a cluster's, so deploy to the
    local model server (MODEL_SERVER_URL) unless the command line says otherwise."""
    here = {"deploy_target": "local", "server_url": local_env.model_server_url()}
    known = entry.params([])
    return entry.params([f"{key}={value}" for key, value in here.items() if key in known] + pairs, preset)


def run_locally(name: str, params: dict[str, Any]) -> LocalRun:
    """Run the compiled pipeline with kfp's local runner against the embedded services."""
    from kfp import components, local

    from pipelines.registry import compiled_path

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
    return LocalRun(runs[-1])


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
    manifest.add_cli(commands)
    args = parser.parse_args(argv)

    if args.command == "manifest":
        return manifest.handle(args)
    if args.command == "stop":
        stopped = local_env.stop()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.command in ("submit", "schedule"):
        return kfp_submit.handle(args)

    from pipelines.registry import compile_all, compiled_path, entry

    if args.command == "compile":
        for path in compile_all(args.names):
            print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        return 0

    try:
        pipeline = entry(args.name)
    except ValueError as error:
        parser.error(str(error))
    try:
        params = local_params(pipeline, args.param, args.preset)
        pipeline.validate(params)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not compiled_path(args.name).exists():
        compile_all([args.name])
    try:
        run = run_locally(args.name, params)
    except StoreError as error:  # the embedded store could not be reached or started: say why, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(pipeline.summarize(params, run))
    return 0
