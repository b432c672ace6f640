"""Submit the compiled pipelines to a Kubeflow Pipelines API server, once or on a schedule.

Every submission uploads the compiled YAML as a pipeline version first (the pipeline itself
on the first upload), and runs reference that version: the UI then shows, for each run, the
exact spec it ran, and a schedule keeps running the version it was created with. Version
names carry the package's content hash, so equal specs are recognisable across versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api

DEFAULT_EXPERIMENT = "fuseml"
DEFAULT_NAMESPACE = "kubeflow"
TOKEN_VAR = "KFP_TOKEN"


def make_client(host: str, namespace: str = DEFAULT_NAMESPACE, token: str | None = None) -> kfp.Client:
    return kfp.Client(host=host, namespace=namespace, existing_token=token)


def package_digest(package_path: Path) -> str:
    return hashlib.sha256(package_path.read_bytes()).hexdigest()


def _stamp(now: dt.datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S-%f")


def upload(client: kfp.Client, name: str, package_path: Path) -> tuple[str, str]:
    """(pipeline id, version id) of this package: a new pipeline the first time, a new version after."""
    now = dt.datetime.now(dt.timezone.utc)
    digest = package_digest(package_path)
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(package_path), pipeline_name=name, description=f"sha256:{digest}")
        versions = client.list_pipeline_versions(pipeline.pipeline_id, page_size=1, sort_by="created_at desc")
        return pipeline.pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    version = client.upload_pipeline_version(
        str(package_path), pipeline_version_name=f"{name}-{digest[:12]}-{_stamp(now)}",
        pipeline_id=pipeline_id, description=f"sha256:{digest}")
    return pipeline_id, version.pipeline_version_id


def check_cron(cron: str) -> None:
    """KFP's cron has six fields, seconds first; a five-field Unix cron would silently mean other times."""
    if len(cron.split()) != 6:
        raise ValueError(f"cron {cron!r} needs 6 fields, seconds first (e.g. '0 0 3 * * *' for 03:00 daily)")


def submit(client: kfp.Client, name: str, package_path: Path, experiment: str, params: dict[str, Any]) -> str:
    """Upload, make sure the experiment exists (kfp looks it up by name first), start a run; the run id."""
    pipeline_id, version_id = upload(client, name, package_path)
    experiment_id = client.create_experiment(experiment).experiment_id
    job_name = f"{name} {_stamp(dt.datetime.now(dt.timezone.utc))}"
    run = client.run_pipeline(experiment_id=experiment_id, job_name=job_name, params=params,
                              pipeline_id=pipeline_id, version_id=version_id)
    return run.run_id


def schedule(
    client: kfp.Client,
    name: str,
    package_path: Path,
    experiment: str,
    cron: str,
    params: dict[str, Any],
    max_concurrency: int = 1,
    catchup: bool = False,
) -> str:
    """An enabled recurring run of this package's version; its id.

    No catch-up by default: a schedule paused for a week must not start seven trainings at once.
    """
    check_cron(cron)
    if not 1 <= max_concurrency <= 10:
        raise ValueError(f"max_concurrency must be between 1 and 10 (the API's range), got {max_concurrency}")
    pipeline_id, version_id = upload(client, name, package_path)
    experiment_id = client.create_experiment(experiment).experiment_id
    recurring = client.create_recurring_run(
        experiment_id=experiment_id, job_name=f"{name} ({cron})", cron_expression=cron,
        max_concurrency=max_concurrency, no_catchup=not catchup, params=params,
        pipeline_id=pipeline_id, version_id=version_id, enabled=True)
    return recurring.recurring_run_id


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """`submit` and `schedule`, for `python -m pipelines`."""
    submit_cmd = subparsers.add_parser("submit", help="upload a pipeline version to Kubeflow and start a run")
    schedule_cmd = subparsers.add_parser("schedule", help="upload a pipeline version and schedule it (enabled)")
    for action, command in (("submit", submit_cmd), ("schedule", schedule_cmd)):
        command.set_defaults(kfp_action=action)
        command.add_argument("name")
        command.add_argument("--host", required=True,
                             help="KFP API endpoint, e.g. http://localhost:8080 after "
                                  "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`")
        command.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
        command.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                             help="the Kubeflow profile namespace in a multi-user deployment")
        command.add_argument("--token", default=os.environ.get(TOKEN_VAR),
                             help=f"bearer token; prefer ${TOKEN_VAR}, which stays out of shell history")
        command.add_argument("--param", action="append", default=[], metavar="K=V")
    schedule_cmd.add_argument("--cron", required=True, help="6 fields, seconds first: '0 0 3 * * *' is 03:00 daily")
    schedule_cmd.add_argument("--max-concurrency", type=int, default=1)
    schedule_cmd.add_argument("--catchup", action="store_true", help="backfill the intervals missed while paused")


def handle(args: argparse.Namespace) -> int:
    """Run `submit` or `schedule`: validate locally, compile fresh, then talk to the API server."""
    from components.images import image
    from pipelines.registry import compile_all, compiled_path, registry

    pipelines = registry()
    if args.name not in pipelines:
        print(f"error: unknown pipeline {args.name!r}; known: {', '.join(pipelines)}", file=sys.stderr)
        return 2
    entry = pipelines[args.name]
    try:
        # In a cluster, deploy to KServe unless told otherwise.
        defaults = ["deploy_target=kserve"] if "deploy_target" in entry.params([]) else []
        params = entry.params(defaults + args.param)
        entry.validate(params)
        if args.kfp_action == "schedule":
            check_cron(args.cron)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if image("base").startswith("localhost/"):
        print(f"warning: the components use {image('base')}, which a cluster cannot pull: "
              "set IMAGE_REGISTRY (and push the images) before submitting", file=sys.stderr)
    compile_all([args.name])  # never submit a YAML older than the sources
    client = make_client(args.host, args.namespace, args.token)
    try:
        if args.kfp_action == "submit":
            run_id = submit(client, args.name, compiled_path(args.name), args.experiment, params)
            print(f"run {run_id} started in experiment {args.experiment!r}")
        else:
            recurring_id = schedule(client, args.name, compiled_path(args.name), args.experiment, args.cron,
                                    params, args.max_concurrency, args.catchup)
            print(f"recurring run {recurring_id} enabled: cron {args.cron!r}, max concurrency "
                  f"{args.max_concurrency}, {'catch-up' if args.catchup else 'no catch-up'}")
    except kfp_server_api.ApiException as error:
        print(f"error: Kubeflow Pipelines API answered {error.status} {error.reason}: {error.body}", file=sys.stderr)
        return 1
    return 0
