"""A stand-in Kubeflow Pipelines API server that answers only what the v2beta1 REST spec defines.

Contract followed: kubeflow/pipelines `backend/api/v2beta1/swagger/` — the operations,
query parameters and definitions of `kfp_api_single_file.swagger.json` (info.version 2.5.0)
for pipelines, pipeline versions, experiments, runs and recurring runs (list and delete
included), and `pipeline.upload.swagger.json` (commit 0656c3d5, which adds `tags` and
`code_source_url`) for the two multipart uploads. Field names are proto JSON names
(snake_case, but `recurringRuns` in a list answer, as the proto spells it); int64 fields such
as `max_concurrency` are answered as strings, as protobuf's JSON mapping does; errors are
`googlerpcStatus` bodies. Healthz answers what the API server's own handler writes
(`backend/src/apiserver/main.go`), not only the swagger's `multi_user`/`pipeline_store`:
`commit_sha` and `tag_name` come from the server's COMMIT_SHA/TAG_NAME ("unknown" if unset).

Beyond the spec, it does what the real server and driver do with what it was sent: unique
pipeline, version and experiment names (409), references to things that exist (404), run
parameters that the pipeline declares, of the declared type (400), and namespaces as the
resource manager treats them: ignored in single-user mode (`ReplaceNamespace`), required in
multi-user mode for uploads (#13400), experiments and listings, which then see only that
namespace; runs and recurring runs take the namespace of their experiment.

Every request outside the contract, or refused, is recorded in `violations`; unknown paths
get 404. Tests assert that `violations` stays empty.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

API = "/apis/v2beta1"
PACKAGE_SUFFIXES = (".yaml", ".yml", ".json", ".zip", ".tar.gz", ".tgz")
MAX_PACKAGE_BYTES = 32 * 1024 * 1024  # "Maximum size of 32MB is supported."

LIST_QUERY = {"page_token", "page_size", "sort_by", "filter"}
QUERY = {
    ("GET", "healthz"): set(),
    ("GET", "pipelines"): LIST_QUERY | {"namespace"},
    ("POST", "upload"): {"name", "display_name", "description", "namespace", "tags", "code_source_url"},
    ("POST", "upload_version"): {"name", "display_name", "pipelineid", "description", "tags", "code_source_url"},
    ("GET", "versions"): LIST_QUERY,
    ("GET", "experiments"): LIST_QUERY | {"namespace"},
    ("POST", "experiments"): set(),
    ("POST", "runs"): {"experiment_id"},
    ("POST", "recurringruns"): set(),
    ("GET", "recurringruns"): LIST_QUERY | {"namespace", "experiment_id"},
    ("DELETE", "recurringrun"): set(),
}
# What a release build's TAG_NAME holds; the default of the stand-in's healthz.
DEFAULT_TAG_NAME = "2.15.0"
# Input fields of the request bodies, from the definitions of the spec.
EXPERIMENT_FIELDS = {
    "experiment_id",
    "display_name",
    "description",
    "created_at",
    "namespace",
    "storage_state",
    "last_run_created_at",
}
RUN_FIELDS = {
    "experiment_id",
    "run_id",
    "display_name",
    "storage_state",
    "description",
    "pipeline_version_id",
    "pipeline_spec",
    "pipeline_version_reference",
    "runtime_config",
    "service_account",
    "created_at",
    "scheduled_at",
    "finished_at",
    "state",
    "error",
    "run_details",
    "recurring_run_id",
    "state_history",
}
RECURRING_RUN_FIELDS = {
    "recurring_run_id",
    "display_name",
    "description",
    "pipeline_version_id",
    "pipeline_spec",
    "pipeline_version_reference",
    "runtime_config",
    "service_account",
    "max_concurrency",
    "trigger",
    "mode",
    "created_at",
    "updated_at",
    "status",
    "error",
    "no_catchup",
    "namespace",
    "experiment_id",
}
RUNTIME_CONFIG_FIELDS = {"parameters", "pipeline_root"}
VERSION_REFERENCE_FIELDS = {"pipeline_id", "pipeline_version_id"}
TRIGGER_FIELDS = {"cron_schedule", "periodic_schedule"}
CRON_FIELDS = {"start_time", "end_time", "cron"}
PREDICATE_FIELDS = {
    "operation",
    "key",
    "int_value",
    "long_value",
    "string_value",
    "timestamp_value",
    "int_values",
    "long_values",
    "string_values",
    "intValue",
    "longValue",
    "stringValue",
    "timestampValue",
    "intValues",
    "longValues",
    "stringValues",
}  # protojson reads either spelling
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


class Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


# google.rpc.Code of each HTTP status the server answers with.
_RPC_CODES = {HTTPStatus.BAD_REQUEST: 3, HTTPStatus.NOT_FOUND: 5, HTTPStatus.CONFLICT: 6, HTTPStatus.UNAUTHORIZED: 16}


def _bad(message: str) -> Refused:
    return Refused(HTTPStatus.BAD_REQUEST, message)


def _only(body: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise _bad(f"{what}: unknown field(s) {', '.join(sorted(unknown))}")


@dataclass
class ContractState:
    """What the server holds, in creation order, for tests to inspect."""

    pipelines: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    recurring_runs: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


class KfpContractServer:
    """Serve the contract on 127.0.0.1 at a free port, in a thread; use as a context manager."""

    def __init__(
        self, token: str | None = None, multi_user: bool = False, tag_name: str | None = DEFAULT_TAG_NAME
    ) -> None:
        """`tag_name=None` answers healthz with the swagger's fields only, as a proxy or an
        older server might; "unknown" is what a server built without TAG_NAME reports."""
        self.token = token
        self.multi_user = multi_user
        self.tag_name = tag_name
        self.state = ContractState()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._clock = itertools.count(0)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> KfpContractServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    # --- helpers ----------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"

    def _now(self) -> str:
        """Distinct, increasing RFC 3339 times, so that sorting by created_at is well defined."""
        second = next(self._clock)
        return f"2025-01-01T00:{second // 60:02d}:{second % 60:02d}Z"

    def _namespace(self, given: str | None, what: str) -> str:
        """The namespace a resource lands in: none in single-user mode, a required one otherwise."""
        if not self.multi_user:
            return ""
        if not given:
            raise _bad(f"{what}: a namespace is required in multi-user mode")
        return given

    def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
        found = next((p for p in self.state.pipelines if p["pipeline_id"] == pipeline_id), None)
        if found is None:
            raise Refused(HTTPStatus.NOT_FOUND, f"pipeline {pipeline_id} not found")
        return found

    def _version(self, pipeline_id: str, version_id: str | None) -> dict[str, Any]:
        versions = [v for v in self.state.versions if v["pipeline_id"] == pipeline_id]
        if version_id is None:  # "If unset, the latest pipeline version is used."
            if not versions:
                raise Refused(HTTPStatus.NOT_FOUND, f"pipeline {pipeline_id} has no version")
            return versions[-1]
        found = next((v for v in versions if v["pipeline_version_id"] == version_id), None)
        if found is None:
            raise Refused(HTTPStatus.NOT_FOUND, f"pipeline version {version_id} of {pipeline_id} not found")
        return found

    @staticmethod
    def _filtered(items: list[dict[str, Any]], raw_filter: str | None) -> list[dict[str, Any]]:
        if not raw_filter:
            return items
        try:
            predicates = json.loads(raw_filter)["predicates"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise _bad(f"filter is not a JSON-serialized Filter: {raw_filter!r}") from None
        for predicate in predicates:
            _only(predicate, PREDICATE_FIELDS, "filter predicate")
            # protojson takes an enum by name or by number (EQUALS = 1, IS_SUBSTRING = 9)
            operation = {1: "EQUALS", 9: "IS_SUBSTRING"}.get(predicate.get("operation"), predicate.get("operation"))
            if operation not in ("EQUALS", "IS_SUBSTRING") or predicate.get("key") not in ("name", "display_name"):
                raise _bad(f"this stand-in only filters names with EQUALS or IS_SUBSTRING, got {predicate}")
            value = predicate.get("string_value", predicate.get("stringValue"))
            if not isinstance(value, str):
                raise _bad(f"{operation} takes a string_value, got {predicate}")
            key = predicate["key"]
            items = [
                item
                for item in items
                if (item.get(key) == value if operation == "EQUALS" else value in item.get(key, ""))
            ]
        return items

    @staticmethod
    def _page(items: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
        if query.get("page_token"):
            raise _bad("page tokens are never issued by this stand-in")
        sort_by = query.get("sort_by", "")
        if sort_by:
            field_name, _, order = sort_by.partition(" ")
            if field_name not in ("created_at", "name", "display_name") or order not in ("", "asc", "desc"):
                raise _bad(f"sort_by {sort_by!r} is not 'field_name [asc|desc]'")
            items = sorted(items, key=lambda item: item[field_name], reverse=order == "desc")
        size = int(query.get("page_size") or 0) or len(items)
        return {key: items[:size], "total_size": len(items)} if items else {"total_size": 0}

    @staticmethod
    def _package(content_type: str, body: bytes) -> tuple[str, dict[str, Any]]:
        """The `uploadfile` form part: its file name and the pipeline spec it holds."""
        if not content_type.startswith("multipart/form-data"):
            raise _bad(f"uploads are multipart/form-data, got {content_type!r}")
        if len(body) > MAX_PACKAGE_BYTES:
            raise _bad("package larger than 32MB")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        if set(parts) != {"uploadfile"}:
            raise _bad(f"expected exactly the form field 'uploadfile', got {sorted(parts)}")
        filename = parts["uploadfile"].get_filename() or ""
        if not filename.endswith(PACKAGE_SUFFIXES):
            raise _bad(f"unsupported package {filename!r}: use one of {', '.join(PACKAGE_SUFFIXES)}")
        documents = [doc for doc in yaml.safe_load_all(parts["uploadfile"].get_payload(decode=True)) if doc]
        spec = documents[0] if documents else {}
        if not {"pipelineInfo", "root", "schemaVersion"} <= set(spec):
            raise _bad("the package is not a compiled KFP pipeline spec (no pipelineInfo/root/schemaVersion)")
        return filename, spec

    @staticmethod
    def _check_parameters(parameters: dict[str, Any], spec: dict[str, Any]) -> None:
        declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
        for name, value in parameters.items():
            if name not in declared:
                raise _bad(f"parameter {name!r} is not an input of pipeline {spec['pipelineInfo']['name']}")
            kind = declared[name]["parameterType"]
            wanted = PARAMETER_TYPES[kind]
            if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
                raise _bad(f"parameter {name}={value!r} is not a {kind}")

    def _runtime(self, body: dict[str, Any], what: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The referenced pipeline version and the runtime config, both checked."""
        reference = body.get("pipeline_version_reference")
        if ("pipeline_spec" in body) == (reference is not None):
            raise _bad(f"{what}: give exactly one of pipeline_spec and pipeline_version_reference")
        if self.multi_user and not body.get("experiment_id"):
            raise _bad(f"{what}: an experiment (whose namespace it runs in) is required in multi-user mode")
        if "experiment_id" in body and not any(
            e["experiment_id"] == body["experiment_id"] for e in self.state.experiments
        ):
            raise Refused(HTTPStatus.NOT_FOUND, f"experiment {body['experiment_id']} not found")
        config = body.get("runtime_config")
        if not isinstance(config, dict):
            raise _bad(f"{what}: runtime_config is a required input")
        _only(config, RUNTIME_CONFIG_FIELDS, f"{what}.runtime_config")
        if reference is None:
            spec = body["pipeline_spec"]
            version: dict[str, Any] = {}
        else:
            _only(reference, VERSION_REFERENCE_FIELDS, f"{what}.pipeline_version_reference")
            if not reference.get("pipeline_id"):
                raise _bad(f"{what}: pipeline_version_reference.pipeline_id is required")
            self._pipeline(reference["pipeline_id"])
            version = self._version(reference["pipeline_id"], reference.get("pipeline_version_id"))
            spec = version["pipeline_spec"]
        self._check_parameters(config.get("parameters") or {}, spec)
        return version, config

    # --- operations --------------------------------------------------------------------------

    def healthz(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"multi_user": self.multi_user, "pipeline_store": "database"}
        if self.tag_name is not None:
            answer.update(commit_sha="0123abc" if self.tag_name != "unknown" else "unknown", tag_name=self.tag_name)
        return answer

    def upload(self, query: dict[str, str], content_type: str, body: bytes) -> dict[str, Any]:
        filename, spec = self._package(content_type, body)
        name = query.get("name") or query.get("display_name") or filename.rsplit(".", 1)[0]
        namespace = self._namespace(query.get("namespace"), "pipeline upload")
        if any(p["name"] == name and p["namespace"] == namespace for p in self.state.pipelines):
            raise Refused(HTTPStatus.CONFLICT, f"AlreadyExists: a pipeline named {name!r} exists")
        pipeline = {
            "pipeline_id": self._id("pipeline"),
            "name": name,
            "namespace": namespace,
            "display_name": query.get("display_name") or name,
            "created_at": self._now(),
        }
        if query.get("description"):
            pipeline["description"] = query["description"]
        self.state.pipelines.append(pipeline)
        # The upload also creates the first version, named like the pipeline.
        self._add_version(
            pipeline["pipeline_id"], name, query.get("display_name") or name, query.get("description"), spec
        )
        return pipeline

    def _add_version(
        self, pipeline_id: str, name: str, display_name: str, description: str | None, spec: dict[str, Any]
    ) -> dict[str, Any]:
        if any(v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.state.versions):
            raise Refused(HTTPStatus.CONFLICT, f"AlreadyExists: pipeline {pipeline_id} has a version named {name!r}")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._id("version"),
            "name": name,
            "display_name": display_name,
            "created_at": self._now(),
            "pipeline_spec": spec,
        }
        if description:
            version["description"] = description
        self.state.versions.append(version)
        return version

    def upload_version(self, query: dict[str, str], content_type: str, body: bytes) -> dict[str, Any]:
        _, spec = self._package(content_type, body)
        if not query.get("pipelineid"):
            raise _bad("pipelineid is required to upload a version")
        if not query.get("name"):
            raise _bad("a pipeline version needs a name")
        self._pipeline(query["pipelineid"])
        return self._add_version(
            query["pipelineid"],
            query["name"],
            query.get("display_name") or query["name"],
            query.get("description"),
            spec,
        )

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, EXPERIMENT_FIELDS, "experiment")
        if not body.get("display_name"):
            raise _bad("experiment.display_name is a required input")
        namespace = self._namespace(body.get("namespace"), "experiment")
        if any(
            e["display_name"] == body["display_name"] and e["namespace"] == namespace for e in self.state.experiments
        ):
            raise Refused(HTTPStatus.CONFLICT, f"AlreadyExists: experiment {body['display_name']!r}")
        experiment = {
            "experiment_id": self._id("experiment"),
            "display_name": body["display_name"],
            "created_at": self._now(),
            "namespace": namespace,
            "storage_state": "AVAILABLE",
        }
        if body.get("description"):
            experiment["description"] = body["description"]
        self.state.experiments.append(experiment)
        return experiment

    def create_run(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        _only(body, RUN_FIELDS, "run")
        if not body.get("display_name"):
            raise _bad("run.display_name is a required input")
        if "experiment_id" in query:
            body = {**body, "experiment_id": query["experiment_id"]}
        version, config = self._runtime(body, "run")
        run = {
            "run_id": self._id("run"),
            "display_name": body["display_name"],
            "runtime_config": config,
            "created_at": self._now(),
            "state": "PENDING",
            "storage_state": "AVAILABLE",
            **{k: body[k] for k in ("experiment_id", "service_account", "description") if body.get(k)},
        }
        if version:
            run["pipeline_version_reference"] = {
                "pipeline_id": version["pipeline_id"],
                "pipeline_version_id": version["pipeline_version_id"],
            }
        self.state.runs.append(run)
        return run

    def create_recurring_run(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, RECURRING_RUN_FIELDS, "recurring run")
        if not body.get("display_name"):
            raise _bad("recurring_run.display_name is a required input")
        trigger = body.get("trigger")
        if not isinstance(trigger, dict) or len(trigger) != 1:
            raise _bad("recurring_run.trigger is required: one of cron_schedule or periodic_schedule")
        _only(trigger, TRIGGER_FIELDS, "recurring_run.trigger")
        if "cron_schedule" in trigger:
            _only(trigger["cron_schedule"], CRON_FIELDS, "trigger.cron_schedule")
            if len(str(trigger["cron_schedule"].get("cron", "")).split()) != 6:
                raise _bad("cron must have 6 fields, seconds first")
        try:
            concurrency = int(body.get("max_concurrency"))  # int64: a JSON number or a numeric string
        except (TypeError, ValueError):
            raise _bad("recurring_run.max_concurrency is a required input") from None
        if not 1 <= concurrency <= 10:
            raise _bad(f"max_concurrency must be in [1, 10], got {concurrency}")
        if body.get("mode") not in ("ENABLE", "DISABLE"):
            raise _bad(f"recurring_run.mode must be ENABLE or DISABLE, got {body.get('mode')!r}")
        version, config = self._runtime(body, "recurring run")
        experiment = next((e for e in self.state.experiments if e["experiment_id"] == body.get("experiment_id")), {})
        recurring = {
            "recurring_run_id": self._id("recurring"),
            "display_name": body["display_name"],
            "runtime_config": config,
            "max_concurrency": str(concurrency),
            "trigger": trigger,
            "mode": body["mode"],
            "status": "ENABLED" if body["mode"] == "ENABLE" else "DISABLED",
            "no_catchup": bool(body.get("no_catchup", False)),
            "created_at": self._now(),
            "namespace": experiment.get("namespace", ""),
            **{k: body[k] for k in ("experiment_id", "service_account", "description") if body.get(k)},
        }
        recurring["updated_at"] = recurring["created_at"]
        if version:
            recurring["pipeline_version_reference"] = {
                "pipeline_id": version["pipeline_id"],
                "pipeline_version_id": version["pipeline_version_id"],
            }
        self.state.recurring_runs.append(recurring)
        return recurring

    def list_pipelines(self, query: dict[str, str]) -> dict[str, Any]:
        # Without a namespace, a multi-user server lists the shared pipelines (namespace "").
        namespace = query.get("namespace", "") if self.multi_user else ""
        pipelines = [p for p in self.state.pipelines if p["namespace"] == namespace]
        return self._page(self._filtered(pipelines, query.get("filter")), query, "pipelines")

    def list_versions(self, pipeline_id: str, query: dict[str, str]) -> dict[str, Any]:
        self._pipeline(pipeline_id)
        versions = [v for v in self.state.versions if v["pipeline_id"] == pipeline_id]
        return self._page(self._filtered(versions, query.get("filter")), query, "pipeline_versions")

    def list_experiments(self, query: dict[str, str]) -> dict[str, Any]:
        namespace = self._namespace(query.get("namespace"), "listing experiments")
        experiments = [e for e in self.state.experiments if e["namespace"] == namespace]
        return self._page(self._filtered(experiments, query.get("filter")), query, "experiments")

    def list_recurring_runs(self, query: dict[str, str]) -> dict[str, Any]:
        """By experiment or by namespace (one of them in multi-user mode), then the filter."""
        recurring = self.state.recurring_runs
        if query.get("experiment_id"):
            if not any(e["experiment_id"] == query["experiment_id"] for e in self.state.experiments):
                raise Refused(HTTPStatus.NOT_FOUND, f"experiment {query['experiment_id']} not found")
            recurring = [r for r in recurring if r.get("experiment_id") == query["experiment_id"]]
        else:
            namespace = self._namespace(query.get("namespace"), "listing recurring runs without an experiment")
            recurring = [r for r in recurring if r["namespace"] == namespace]
        # The proto names this field recurringRuns, so its JSON name is camelCase.
        return self._page(self._filtered(recurring, query.get("filter")), query, "recurringRuns")

    def delete_recurring_run(self, recurring_run_id: str) -> dict[str, Any]:
        found = next((r for r in self.state.recurring_runs if r["recurring_run_id"] == recurring_run_id), None)
        if found is None:
            raise Refused(HTTPStatus.NOT_FOUND, f"recurring run {recurring_run_id} not found")
        self.state.recurring_runs.remove(found)
        return {}  # google.protobuf.Empty

    def dispatch(self, method: str, path: str, query: dict[str, str], content_type: str, body: bytes) -> Any:
        """Route one request; Refused for anything outside the contract."""
        parts = tuple(path.removeprefix(API + "/").split("/")) if path.startswith(API + "/") else ()
        routes: dict[tuple[str, tuple[str, ...]], tuple[str, Any]] = {
            ("GET", ("healthz",)): ("healthz", self.healthz),
            ("GET", ("pipelines",)): ("pipelines", lambda: self.list_pipelines(query)),
            ("POST", ("pipelines", "upload")): ("upload", lambda: self.upload(query, content_type, body)),
            ("POST", ("pipelines", "upload_version")): (
                "upload_version",
                lambda: self.upload_version(query, content_type, body),
            ),
            ("GET", ("experiments",)): ("experiments", lambda: self.list_experiments(query)),
            ("POST", ("experiments",)): ("experiments", lambda: self.create_experiment(_json(body))),
            ("POST", ("runs",)): ("runs", lambda: self.create_run(query, _json(body))),
            ("POST", ("recurringruns",)): ("recurringruns", lambda: self.create_recurring_run(_json(body))),
            ("GET", ("recurringruns",)): ("recurringruns", lambda: self.list_recurring_runs(query)),
        }
        if method == "GET" and len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "versions":
            operation = ("versions", lambda: self.list_versions(parts[1], query))
        elif method == "DELETE" and len(parts) == 2 and parts[0] == "recurringruns":
            operation = ("recurringrun", lambda: self.delete_recurring_run(parts[1]))
        elif (method, parts) in routes:
            operation = routes[(method, parts)]
        else:
            raise Refused(HTTPStatus.NOT_FOUND, f"{method} {path} is not part of the contract")
        name, handler = operation
        unknown = set(query) - QUERY[(method, name)]
        if unknown:
            raise _bad(f"{method} {path}: unknown query parameter(s) {', '.join(sorted(unknown))}")
        return handler()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server._lock:
                    server.state.requests.append((self.command, url.path))
                    try:
                        if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                            raise Refused(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
                        status, answer = (
                            HTTPStatus.OK,
                            server.dispatch(self.command, url.path, query, self.headers.get("Content-Type", ""), body),
                        )
                    except Refused as refused:
                        server.state.violations.append(f"{self.command} {self.path}: {refused}")
                        status = refused.status
                        answer = {"code": _RPC_CODES[refused.status], "message": str(refused), "details": []}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def _unsupported(self) -> None:
                with server._lock:
                    server.state.violations.append(f"{self.command} {self.path}: method not in the contract")
                self.send_response(HTTPStatus.NOT_FOUND)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_PATCH = _unsupported

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        return Handler


def _json(body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body or b"null")
    except json.JSONDecodeError:
        raise _bad("the body is not JSON") from None
    if not isinstance(decoded, dict):
        raise _bad("the body must be a JSON object")
    return decoded
