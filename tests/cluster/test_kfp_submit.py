"""Submission and scheduling through the real `kfp.Client`, against the v2beta1 REST contract.

The server (`kfp_contract_server`) answers as the Kubeflow Pipelines API does and records every
request outside the contract; each test ends by asserting there was none. No cluster here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import kfp_server_api
import pytest

from components.contract import code_version
from pipelines import registry as pipeline_registry
from pipelines.kfp_submit import (
    MIN_BACKEND_VERSION,
    BackendError,
    add_cli,
    handle,
    make_client,
    package_digest,
    schedule,
    submit,
)
from tests.cluster.kfp_contract_server import KfpContractServer

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")

NAMESPACE = "kubeflow-user-example-com"


REGISTRY = "registry.example.com/fuseml"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sum spec compiled for a registry, as `IMAGE_REGISTRY=... python -m pipelines compile` does
    (in a process of its own: the image names are read when the components are imported)."""
    out = tmp_path_factory.mktemp("compiled")
    compile_for_registry = (
        "from pathlib import Path; from pipelines.registry import compile_all; "
        f"compile_all(['sum'], out_dir=Path({str(out)!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", compile_for_registry],
        check=True,
        timeout=300,
        env={**os.environ, "IMAGE_REGISTRY": REGISTRY},
    )
    path = out / "sum.yaml"
    assert f"image: {REGISTRY}/base:" in path.read_text()
    return path


@pytest.fixture(scope="module")
def local_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sum spec compiled with the default localhost/ image names, as committed."""
    (path,) = pipeline_registry.compile_all(["sum"], out_dir=tmp_path_factory.mktemp("compiled-local"))
    return path


@pytest.fixture
def params() -> dict:
    return pipeline_registry.registry()["sum"].params(["epochs=3", "seed=7"])


@pytest.fixture
def server() -> Iterator[KfpContractServer]:
    with KfpContractServer() as running:
        yield running
        assert running.state.violations == [], "requests outside the v2beta1 contract"


def calls(server: KfpContractServer) -> list[tuple[str, str]]:
    return [(method, path.removeprefix("/apis/v2beta1")) for method, path in server.state.requests]


def test_first_submit_uploads_the_pipeline_creates_the_experiment_and_runs_that_version(
    server: KfpContractServer, package: Path, params: dict
) -> None:
    run_id = submit(make_client(server.url), "sum", package, "fuseml", params)

    state = server.state
    (pipeline,) = state.pipelines
    seed, version = state.versions  # the server names the pipeline's first version after it
    (experiment,) = state.experiments
    (run,) = state.runs
    description = f"sha256:{package_digest(package)} code {code_version()}"
    assert pipeline["name"] == "sum" and pipeline["description"] == description
    assert seed["name"] == "sum" and version["name"].startswith(f"sum-{code_version()}-")
    assert experiment["display_name"] == "fuseml"
    assert run["run_id"] == run_id and run["experiment_id"] == experiment["experiment_id"]
    assert run["pipeline_version_reference"] == {
        "pipeline_id": pipeline["pipeline_id"],
        "pipeline_version_id": version["pipeline_version_id"],
    }
    assert run["runtime_config"]["parameters"] == params
    assert type(run["runtime_config"]["parameters"]["epochs"]) is int  # typed, not strings
    assert calls(server) == [
        ("GET", "/healthz"),  # kfp.Client asks whether the deployment is multi-user
        ("GET", "/healthz"),  # submit reads the backend's version
        ("GET", "/pipelines"),
        ("POST", "/pipelines/upload"),
        ("POST", "/pipelines/upload_version"),
        ("GET", "/experiments"),
        ("POST", "/experiments"),
        ("POST", "/runs"),
    ]


def test_a_second_submit_adds_a_version_named_by_code_version_and_content_and_reuses_the_experiment(
    server: KfpContractServer, package: Path, params: dict
) -> None:
    """Names say which code and which spec ran: the UI lists versions and runs by name."""
    client = make_client(server.url)
    submit(client, "sum", package, "fuseml", params)
    second_run = submit(client, "sum", package, "fuseml", {**params, "epochs": 5})

    state = server.state
    assert len(state.pipelines) == 1 and len(state.experiments) == 1
    _, first, second = state.versions
    digest = package_digest(package)
    for version in (first, second):
        assert version["name"].startswith(f"sum-{code_version()}-{digest[:12]}-")
        assert version["description"] == f"sha256:{digest} code {code_version()}"
    assert second["pipeline_version_id"] != first["pipeline_version_id"]
    run = state.runs[1]
    assert run["run_id"] == second_run
    assert all(r["display_name"].startswith(f"sum {code_version()} ") for r in state.runs)
    assert run["pipeline_version_reference"]["pipeline_version_id"] == second["pipeline_version_id"]
    assert run["runtime_config"]["parameters"]["epochs"] == 5
    assert calls(server).count(("POST", "/experiments")) == 1
    assert calls(server).count(("POST", "/pipelines/upload")) == 1
    assert calls(server).count(("POST", "/pipelines/upload_version")) == 2


def test_schedule_creates_an_enabled_recurring_run_without_catchup_and_one_at_a_time(
    server: KfpContractServer, package: Path, params: dict
) -> None:
    recurring_id = schedule(make_client(server.url), "sum", package, "nightly", "0 0 3 * * *", params)

    (recurring,) = server.state.recurring_runs
    _, version = server.state.versions
    assert recurring["recurring_run_id"] == recurring_id
    assert recurring["display_name"] == f"sum schedule {code_version()}"
    assert (recurring["mode"], recurring["status"]) == ("ENABLE", "ENABLED")
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert recurring["max_concurrency"] == "1"
    assert recurring["no_catchup"] is True
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]
    assert recurring["runtime_config"]["parameters"] == params
    assert server.state.experiments[0]["display_name"] == "nightly"
    assert server.state.runs == []


def test_schedule_with_catchup_and_more_concurrency(server: KfpContractServer, package: Path, params: dict) -> None:
    schedule(make_client(server.url), "sum", package, "fuseml", "0 30 2 * * 1", params, max_concurrency=2, catchup=True)
    (recurring,) = server.state.recurring_runs
    assert recurring["no_catchup"] is False and recurring["max_concurrency"] == "2"


@pytest.mark.parametrize(
    "cron, concurrency, message",
    [
        ("0 3 * * *", 1, "6 fields"),
        ("0 0 3 * * *", 0, "between 1 and 10"),
        ("0 0 3 * * *", 11, "between 1 and 10"),
    ],
)
def test_schedule_refuses_bad_settings_before_uploading_anything(
    server: KfpContractServer, package: Path, params: dict, cron: str, concurrency: int, message: str
) -> None:
    client = make_client(server.url)
    with pytest.raises(ValueError, match=message):
        schedule(client, "sum", package, "fuseml", cron, params, max_concurrency=concurrency)
    assert calls(server) == [("GET", "/healthz")]


def test_scheduling_again_replaces_the_schedule_instead_of_adding_one(
    server: KfpContractServer, package: Path, params: dict
) -> None:
    """Run twice, `schedule` leaves one recurring run, on the newest version, cron and parameters."""
    client = make_client(server.url)
    first_id = schedule(client, "sum", package, "nightly", "0 0 3 * * *", params)
    second_id = schedule(client, "sum", package, "nightly", "0 30 4 * * *", {**params, "epochs": 5})

    (recurring,) = server.state.recurring_runs
    newest = server.state.versions[-1]
    assert recurring["recurring_run_id"] == second_id != first_id
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == newest["pipeline_version_id"]
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 30 4 * * *"}}
    assert recurring["runtime_config"]["parameters"]["epochs"] == 5
    # created before the old one is deleted: a refused create must not leave no schedule at all
    methods = [method for method, path in calls(server) if path.startswith("/recurringruns")]
    assert methods == ["GET", "POST", "GET", "POST", "DELETE"]
    assert calls(server)[-1] == ("DELETE", f"/recurringruns/{first_id}")


def test_scheduling_again_leaves_other_schedules_alone(server: KfpContractServer, package: Path, params: dict) -> None:
    """Only this pipeline's schedule in this experiment is replaced; `xsum`'s name contains
    `sum schedule `, which the server's substring filter matches and the client must drop."""
    client = make_client(server.url)
    kept = {
        schedule(client, "xsum", package, "nightly", "0 0 1 * * *", params),
        schedule(client, "sum", package, "weekly", "0 0 1 * * 0", params),
    }
    schedule(client, "sum", package, "nightly", "0 0 3 * * *", params)
    replacing = schedule(client, "sum", package, "nightly", "0 0 4 * * *", params)

    assert {r["recurring_run_id"] for r in server.state.recurring_runs} == kept | {replacing}


def test_a_refused_schedule_leaves_the_old_one_running(server: KfpContractServer, package: Path, params: dict) -> None:
    client = make_client(server.url)
    old_id = schedule(client, "sum", package, "nightly", "0 0 3 * * *", params)
    with pytest.raises(kfp_server_api.ApiException) as refused:
        schedule(client, "sum", package, "nightly", "0 0 3 * * *", {**params, "not_a_parameter": 1})
    assert refused.value.status == 400
    assert [r["recurring_run_id"] for r in server.state.recurring_runs] == [old_id]
    assert len(server.state.violations) == 1
    server.state.violations.clear()


# --- the backend's version ----------------------------------------------------------------------


def test_the_minimum_backend_is_the_release_that_reads_kfp_kubernetes_parameters() -> None:
    """kubeflow/pipelines#11662 and #11770 first shipped in 2.5.0 (its CHANGELOG)."""
    assert MIN_BACKEND_VERSION == (2, 5, 0)


def test_an_older_backend_is_refused_naming_both_versions(package: Path, params: dict) -> None:
    with KfpContractServer(tag_name="2.4.1") as old:
        with pytest.raises(BackendError, match=r"backend is 2\.4\.1, older than 2\.5\.0"):
            submit(make_client(old.url), "sum", package, "fuseml", params)
        with pytest.raises(BackendError, match="2.4.1"):
            schedule(make_client(old.url), "sum", package, "fuseml", "0 0 3 * * *", params)
        assert old.state.pipelines == [] and old.state.violations == []


@pytest.mark.parametrize("tag_name", ["2.5.0", "v2.15.0", "2.16.0-rc.1"])
def test_a_recent_enough_backend_is_used_without_a_warning(tag_name: str, package: Path, params: dict, capsys) -> None:
    with KfpContractServer(tag_name=tag_name) as recent:
        submit(make_client(recent.url), "sum", package, "fuseml", params)
        assert len(recent.state.runs) == 1
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("tag_name", ["unknown", None])
def test_a_backend_without_a_version_gets_a_warning_and_the_run(
    tag_name: str | None, package: Path, params: dict, capsys
) -> None:
    """A build without TAG_NAME says "unknown"; a proxy may pass only the swagger's fields."""
    with KfpContractServer(tag_name=tag_name) as unversioned:
        submit(make_client(unversioned.url), "sum", package, "fuseml", params)
        assert len(unversioned.state.runs) == 1
    err = capsys.readouterr().err
    assert "does not report its version" in err and "2.5.0" in err


# --- namespaces (multi-user Kubeflow) -----------------------------------------------------------


@pytest.fixture
def private_server() -> Iterator[KfpContractServer]:
    with KfpContractServer(token="s3cr3t-token", multi_user=True) as running:
        yield running


def test_a_profile_namespace_and_a_bearer_token_are_sent(
    private_server: KfpContractServer, package: Path, params: dict
) -> None:
    """Pipeline, experiment, runs and the schedule all land in the profile namespace; a second
    submit finds the namespaced pipeline (kfp's get_pipeline_id looks only at shared ones)."""
    client = make_client(private_server.url, NAMESPACE, "s3cr3t-token")
    submit(client, "sum", package, "fuseml", params)
    submit(client, "sum", package, "fuseml", params)
    schedule(client, "sum", package, "fuseml", "0 0 3 * * *", params)
    schedule(client, "sum", package, "fuseml", "0 0 4 * * *", params)
    state = private_server.state
    assert state.violations == []
    (pipeline,) = state.pipelines
    (experiment,) = state.experiments
    (recurring,) = state.recurring_runs
    assert pipeline["namespace"] == experiment["namespace"] == recurring["namespace"] == NAMESPACE
    assert all(run["experiment_id"] == experiment["experiment_id"] for run in state.runs)
    # namespace given: kfp.Client does not probe; each submit and schedule reads the version once
    assert state.requests.count(("GET", "/apis/v2beta1/healthz")) == 4

    with pytest.raises(kfp_server_api.ApiException) as refused:
        submit(make_client(private_server.url, NAMESPACE, "wrong"), "sum", package, "fuseml", params)
    assert refused.value.status == 401
    assert len(private_server.state.violations) == 1


def test_a_multi_user_backend_needs_a_namespace(private_server: KfpContractServer, package: Path, params: dict) -> None:
    """Refused before uploading, where the server would answer an upload 400 (#13400)."""
    client = make_client(private_server.url, token="s3cr3t-token")
    with pytest.raises(BackendError, match="multi-user.*--namespace"):
        submit(client, "sum", package, "fuseml", params)
    assert set(private_server.state.requests) == {("GET", "/apis/v2beta1/healthz")}

    with pytest.raises(kfp_server_api.ApiException) as refused:  # what the server itself does
        client.upload_pipeline(str(package), pipeline_name="sum")
    assert refused.value.status == 400 and "namespace" in json.loads(refused.value.body)["message"]
    private_server.state.violations.clear()


def test_the_contract_server_refuses_what_the_api_does_not_define(server: KfpContractServer) -> None:
    for method, path in [
        ("GET", "/apis/v2beta1/runs/run-0001"),
        ("GET", "/apis/v1beta1/pipelines"),
        ("DELETE", "/apis/v2beta1/pipelines/pipeline-0001"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(urllib.request.Request(server.url + path, method=method))
        assert answer.value.code == 404
    assert len(server.state.violations) == 3
    server.state.violations.clear()


def test_the_contract_server_checks_run_parameters_against_the_pipeline(
    server: KfpContractServer, package: Path, params: dict
) -> None:
    client = make_client(server.url)
    with pytest.raises(kfp_server_api.ApiException) as unknown:
        submit(client, "sum", package, "fuseml", {**params, "not_a_parameter": 1})
    assert unknown.value.status == 400 and "not_a_parameter" in json.loads(unknown.value.body)["message"]
    with pytest.raises(kfp_server_api.ApiException) as mistyped:
        submit(client, "sum", package, "fuseml", {**params, "epochs": "3"})  # what `kfp recurring-run create` sends
    assert "NUMBER_INTEGER" in json.loads(mistyped.value.body)["message"]
    assert len(server.state.violations) == 2
    server.state.violations.clear()


# --- the command line -------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def compiled_in_tmp(monkeypatch: pytest.MonkeyPatch, package: Path) -> Path:
    """Keep the CLI from rewriting pipelines/compiled/ in the working tree."""
    monkeypatch.setattr(pipeline_registry, "compile_all", lambda names: [package])
    monkeypatch.setattr(pipeline_registry, "compiled_path", lambda name: package)
    return package


def test_cli_submit_and_schedule(server: KfpContractServer, compiled_in_tmp: Path, capsys) -> None:
    assert handle(parse(["submit", "sum", "--host", server.url, "--param", "epochs=3"])) == 0
    assert server.state.runs[0]["runtime_config"]["parameters"]["epochs"] == 3
    for _ in range(2):
        assert (
            handle(parse(["schedule", "sum", "--host", server.url, "--cron", "0 0 3 * * *", "--experiment", "nightly"]))
            == 0
        )
    (recurring,) = server.state.recurring_runs
    assert recurring["no_catchup"] is True and recurring["mode"] == "ENABLE"
    out = capsys.readouterr().out
    assert f"run {server.state.runs[0]['run_id']} started" in out and "recurring run" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["submit", "nope"], "unknown pipeline"),
        (["submit", "sum", "--param", "epochs=many"], "not a valid int"),
        (["submit", "sum", "--preset", "paper"], "unknown preset"),  # presets reach the parameters
        (["schedule", "sum", "--cron", "0 3 * * *"], "6 fields"),
    ],
)
def test_cli_refuses_bad_input_without_calling_the_server(
    server: KfpContractServer, compiled_in_tmp: Path, capsys, argv: list[str], message: str
) -> None:
    assert handle(parse(argv[:2] + ["--host", server.url] + argv[2:])) == 2
    assert message in capsys.readouterr().err
    assert server.state.requests == []


def test_cli_refuses_a_spec_with_localhost_images_unless_told_they_are_side_loaded(
    server: KfpContractServer, monkeypatch: pytest.MonkeyPatch, local_package: Path, capsys
) -> None:
    monkeypatch.setattr(pipeline_registry, "compile_all", lambda names: [local_package])
    monkeypatch.setattr(pipeline_registry, "compiled_path", lambda name: local_package)
    for command in (["submit", "sum"], ["schedule", "sum", "--cron", "0 0 3 * * *"]):
        assert handle(parse(command + ["--host", server.url])) == 2
        err = capsys.readouterr().err
        assert "localhost/fuseml-kfp/base:" in err and "--local-images" in err
    assert server.state.requests == []
    assert handle(parse(["submit", "sum", "--host", server.url, "--local-images"])) == 0
    assert len(server.state.runs) == 1


def test_cli_refuses_an_old_backend(compiled_in_tmp: Path, capsys) -> None:
    with KfpContractServer(tag_name="2.3.0") as old:
        assert handle(parse(["submit", "sum", "--host", old.url])) == 2
        assert old.state.pipelines == []
    err = capsys.readouterr().err
    assert "2.3.0" in err and "2.5.0" in err


def test_cli_reports_api_errors(compiled_in_tmp: Path, capsys) -> None:
    with KfpContractServer(token="needed") as locked:
        assert handle(parse(["submit", "sum", "--host", locked.url, "--namespace", NAMESPACE])) == 1
    assert "401" in capsys.readouterr().err
