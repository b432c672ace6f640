"""Submit the compiled pipelines to a Kubeflow Pipelines API server, once or on a schedule.

Every submission first asks the backend its version (healthz) and refuses one older than
MIN_BACKEND_VERSION. It then uploads the compiled YAML as a pipeline version (creating the
pipeline on the first upload), and runs reference that version: the UI then shows, for each
run, the exact spec it ran, and a schedule keeps running the version it was created with.
Version and run names carry the code version (`components.contract.code_version()`) and the
package's content hash, so equal specs are recognisable across versions. Everything is created
in the given namespace, which a multi-user deployment requires.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api

from components.contract import code_version

DEFAULT_EXPERIMENT = "fuseml"
TOKEN_VAR = "KFP_TOKEN"
# kfp-kubernetes 2.17 compiles `secretNameParameter`/`configMapNameParameter` and `optional`
# into the platform spec. KFP 2.5.0 is the first backend whose driver reads the *NameParameter
# fields (kubeflow/pipelines#11770) and skips fields it does not know instead of failing the
# task with "unknown field" (#11662); older drivers fail every task that uses the Secret.
MIN_BACKEND_VERSION = (2, 5, 0)
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


class BackendError(ValueError):
    """The backend cannot take these pipelines, or not without more from the caller."""


@dataclass(frozen=True)
class Backend:
    """What the backend's healthz says about itself."""

    tag_name: str | None  # TAG_NAME of the API server build, None when it does not say
    multi_user: bool


def make_client(host: str, namespace: str | None = None, token: str | None = None) -> kfp.Client:
    """A client bound to the profile namespace, which submit and schedule create everything in."""
    # kfp.Client takes "kubeflow" for "no namespace given" (and then probes healthz for multi-user).
    return kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token)


def _namespace(client: kfp.Client) -> str | None:
    return client.get_user_namespace() or None


def backend_info(client: kfp.Client) -> Backend:
    """Read healthz as raw JSON: kfp_server_api's model keeps only multi_user and pipeline_store,
    while the API server also writes `tag_name` (its release) and `commit_sha`."""
    response = client._healthz_api.healthz_service_get_healthz(_preload_content=False)
    answer = json.loads(response.data or b"{}")
    tag = answer.get("tag_name")
    return Backend(tag_name=tag if tag and tag != "unknown" else None, multi_user=answer.get("multi_user") is True)


def check_backend(client: kfp.Client) -> None:
    """Refuse a backend older than MIN_BACKEND_VERSION, and a multi-user one without a namespace.

    A backend that does not report a parseable version (a build without TAG_NAME reports
    "unknown") is let through with a warning on stderr: refusing it would block every
    development build, and the first task that reads the Secret fails loudly if it is too old.
    """
    backend = backend_info(client)
    wanted = _dotted(MIN_BACKEND_VERSION)
    found = _VERSION.match(backend.tag_name or "")
    if found is None:
        print(
            f"warning: the Kubeflow Pipelines backend does not report its version "
            f"(healthz tag_name {backend.tag_name or 'unknown'!r}); these pipelines need {wanted} or newer, "
            "continuing without checking",
            file=sys.stderr,
        )
    elif tuple(map(int, found.groups())) < MIN_BACKEND_VERSION:
        raise BackendError(
            f"the Kubeflow Pipelines backend is {backend.tag_name}, older than {wanted}, the oldest "
            "that runs specs compiled by kfp-kubernetes 2.17 (secretNameParameter, optional): "
            f"upgrade Kubeflow Pipelines to {wanted} or newer"
        )
    if backend.multi_user and not _namespace(client):
        raise BackendError(
            "this Kubeflow Pipelines deployment is multi-user: give the profile namespace "
            "(--namespace) to create pipelines, experiments and runs in"
        )


LOCAL_REGISTRY = "localhost/"


def local_images(package_path: Path) -> list[str]:
    """The executor images of a compiled spec that name this machine's store (`localhost/...`),
    which no cluster can pull unless they were side-loaded into its nodes."""
    import yaml

    images = {
        executor["container"]["image"]
        for document in yaml.safe_load_all(package_path.read_text())  # the pipeline, then its platform spec
        for executor in ((document or {}).get("deploymentSpec") or {}).get("executors", {}).values()
        if "container" in executor
    }
    return sorted(image for image in images if image.startswith(LOCAL_REGISTRY))


def package_digest(package_path: Path) -> str:
    return hashlib.sha256(package_path.read_bytes()).hexdigest()


def _stamp(now: dt.datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S-%f")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name_filter(operation: int, value: str) -> str:
    """A v2beta1 Filter on display_name (operations: EQUALS 1, IS_SUBSTRING 9)."""
    return json.dumps({"predicates": [{"operation": operation, "key": "display_name", "string_value": value}]})


def _pipeline_id(client: kfp.Client, name: str, namespace: str | None) -> str | None:
    """The pipeline of that name in the namespace; kfp's get_pipeline_id would look only at shared ones."""
    found = client.list_pipelines(filter=_name_filter(1, name), namespace=namespace, page_size=2).pipelines or []
    if len(found) > 1:
        raise BackendError(f"{len(found)} pipelines are named {name!r} in namespace {namespace!r}")
    return found[0].pipeline_id if found else None


def upload(client: kfp.Client, name: str, package_path: Path) -> tuple[str, str]:
    """(pipeline id, version id) of this package, uploaded as a version named after the code version.

    The first upload also creates the pipeline, in the namespace, with a first version the
    server names after the pipeline; runs use the named version uploaded next to it.
    """
    digest = package_digest(package_path)
    description = f"sha256:{digest} code {code_version()}"
    pipeline_id = _pipeline_id(client, name, _namespace(client))
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(
            str(package_path), pipeline_name=name, description=description, namespace=_namespace(client)
        ).pipeline_id
    version = client.upload_pipeline_version(
        str(package_path),
        pipeline_version_name=f"{name}-{code_version()}-{digest[:12]}-{_stamp(_now())}",
        pipeline_id=pipeline_id,
        description=description,
    )
    return pipeline_id, version.pipeline_version_id


def check_cron(cron: str) -> None:
    """KFP's cron has six fields, seconds first; a five-field Unix cron would silently mean other times."""
    if len(cron.split()) != 6:
        raise ValueError(f"cron {cron!r} needs 6 fields, seconds first (e.g. '0 0 3 * * *' for 03:00 daily)")


def submit(client: kfp.Client, name: str, package_path: Path, experiment: str, params: dict[str, Any]) -> str:
    """Check the backend, upload, make sure the experiment exists, start a run; the run id."""
    check_backend(client)
    pipeline_id, version_id = upload(client, name, package_path)
    experiment_id = client.create_experiment(experiment, namespace=_namespace(client)).experiment_id
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=f"{name} {code_version()} {_stamp(_now())}",
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return run.run_id


def schedule_prefix(name: str) -> str:
    """The part of a schedule's display name that stays when the code version changes."""
    return f"{name} schedule "


def _schedules(client: kfp.Client, experiment_id: str, name: str) -> list[Any]:
    """This pipeline's recurring runs in the experiment, all pages."""
    prefix, found, token = schedule_prefix(name), [], ""
    while True:
        page = client.list_recurring_runs(
            experiment_id=experiment_id, filter=_name_filter(9, prefix), page_size=100, page_token=token
        )
        # IS_SUBSTRING is SQL LIKE: keep only names that really start with the prefix
        found += [r for r in page.recurring_runs or [] if r.display_name.startswith(prefix)]
        token = page.next_page_token
        if not token:
            return found


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
    """The one enabled recurring run of this pipeline in the experiment, on this package's version; its id.

    Scheduling again replaces the schedule (new version, cron, parameters) instead of adding a
    second one. v2beta1 cannot update a recurring run, so the new one is created first and the
    old ones deleted after: a refused create leaves the old schedule running, and the two
    overlap only for the moment between the calls. No catch-up by default: a schedule paused
    for a week must not start seven trainings at once.
    """
    check_cron(cron)
    if not 1 <= max_concurrency <= 10:
        raise ValueError(f"max_concurrency must be between 1 and 10 (the API's range), got {max_concurrency}")
    check_backend(client)
    pipeline_id, version_id = upload(client, name, package_path)
    experiment_id = client.create_experiment(experiment, namespace=_namespace(client)).experiment_id
    previous = _schedules(client, experiment_id, name)
    recurring = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=f"{schedule_prefix(name)}{code_version()}",
        description=f"cron {cron}",
        cron_expression=cron,
        max_concurrency=max_concurrency,
        no_catchup=not catchup,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
        enabled=True,
    )
    for old in previous:
        client.delete_recurring_run(old.recurring_run_id)
    return recurring.recurring_run_id


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """`submit` and `schedule`, for `python -m pipelines`."""
    submit_cmd = subparsers.add_parser("submit", help="upload a pipeline version to Kubeflow and start a run")
    schedule_cmd = subparsers.add_parser(
        "schedule",
        help="upload a pipeline version and schedule it (enabled); replaces this pipeline's schedule in the experiment",
    )
    for action, command in (("submit", submit_cmd), ("schedule", schedule_cmd)):
        command.set_defaults(kfp_action=action)
        command.add_argument("name")
        command.add_argument(
            "--host",
            required=True,
            help="KFP API endpoint, e.g. http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`",
        )
        command.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
        command.add_argument("--namespace", help="the Kubeflow profile namespace; required by a multi-user deployment")
        command.add_argument(
            "--token",
            default=os.environ.get(TOKEN_VAR),
            help=f"bearer token; prefer ${TOKEN_VAR}, which stays out of shell history",
        )
        command.add_argument("--param", action="append", default=[], metavar="K=V")
        command.add_argument("--preset", help="a named set of parameters, e.g. three-body's paper")
        command.add_argument(
            "--local-images",
            action="store_true",
            help="the cluster has the localhost/ images side-loaded (kind, k3s): submit a spec that names them",
        )
    schedule_cmd.add_argument("--cron", required=True, help="6 fields, seconds first: '0 0 3 * * *' is 03:00 daily")
    schedule_cmd.add_argument("--max-concurrency", type=int, default=1)
    schedule_cmd.add_argument("--catchup", action="store_true", help="backfill the intervals missed while paused")


def handle(args: argparse.Namespace) -> int:
    """Run `submit` or `schedule`: validate locally, compile fresh, then talk to the API server."""
    from pipelines.registry import compile_all, compiled_path, entry

    try:
        pipeline = entry(args.name)
        params = pipeline.params(args.param, args.preset)  # the compiled defaults are the cluster's
        pipeline.validate(params)
        if args.kfp_action == "schedule":
            check_cron(args.cron)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    compile_all([args.name])  # never submit a YAML older than the sources
    unpullable = local_images(compiled_path(args.name))
    if unpullable and not args.local_images:
        print(
            f"error: the spec names images in this machine's store ({', '.join(unpullable)}), which a cluster "
            "cannot pull: build and push with IMAGE_REGISTRY set (make images push), or pass --local-images "
            "if they are side-loaded into the cluster's nodes (kind load, k3s ctr images import)",
            file=sys.stderr,
        )
        return 2
    client = make_client(args.host, args.namespace, args.token)
    try:
        if args.kfp_action == "submit":
            run_id = submit(client, args.name, compiled_path(args.name), args.experiment, params)
            print(f"run {run_id} started in experiment {args.experiment!r}")
        else:
            recurring_id = schedule(
                client,
                args.name,
                compiled_path(args.name),
                args.experiment,
                args.cron,
                params,
                args.max_concurrency,
                args.catchup,
            )
            print(
                f"recurring run {recurring_id} enabled: cron {args.cron!r}, max concurrency "
                f"{args.max_concurrency}, {'catch-up' if args.catchup else 'no catch-up'}"
            )
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except kfp_server_api.ApiException as error:
        print(f"error: Kubeflow Pipelines API answered {error.status} {error.reason}: {error.body}", file=sys.stderr)
        return 1
    return 0
