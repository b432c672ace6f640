"""The kustomize overlays with the InferenceServices `python -m pipelines manifest` prints, built
with kubectl as a GitOps repository would hold them and loaded strictly into the clients' typed models.

No cluster is needed, and none is contacted: what an API server would reject for an unknown
or mistyped field, the strict loader rejects here, with the path of the field.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kserve
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.utils import parse_quantity

from components.deploy.kserve_cluster import SERVICE_ACCOUNT, build_inference_service
from pipelines import cli

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
BUILDS = ["base", "overlays/kubeflow-user", "overlays/minio", "overlays/seaweedfs"]
STORE_ENDPOINTS = {"overlays/minio": "minio-service.kubeflow:9000", "overlays/seaweedfs": "seaweedfs.kubeflow:8333"}
USER_NAMESPACE = "kubeflow-user-example-com"
OWN_NAMESPACE = "fuseml"
SERVED = {"sum": "3", "three-body": "1"}  # model -> the version its InferenceService pins
PLACEHOLDER = "REPLACE_ME"

MODEL_OF_KIND = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (float, int),
    "datetime": (str,),
    "date": (str,),
}

# KFP's S3 provider config, as the JSON tags of backend/src/v2/config/s3.go declare it.
KFP_S3_PROVIDER_KEYS = {
    "provider": {"default", "Overrides"},
    "default": {"endpoint", "credentials", "region", "disableSSL", "forcePathStyle", "maxRetries"},
    "credentials": {"fromEnv", "secretRef"},
    "secretRef": {"secretName", "accessKeyKey", "secretKeyKey"},
}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not on PATH: the overlays are built with `kubectl kustomize` (kustomize is built into kubectl)",
)


class SchemaError(AssertionError):
    """A manifest field the typed client models do not know, or of the wrong JSON type."""


def _model_class(type_name: str) -> type:
    klass = getattr(kserve.models, type_name, None) or getattr(k8s, type_name, None)
    if klass is None or not hasattr(klass, "attribute_map"):
        raise SchemaError(f"no client model named {type_name}")
    return klass


def strict_load(data: Any, type_name: str, path: str = "$") -> Any:
    """Build the typed model for `data`, failing on any key outside the model's attribute_map."""
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise SchemaError(f"{path}: expected a list for {type_name}, got {type(data).__name__}")
        return [strict_load(item, type_name[5:-1], f"{path}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise SchemaError(f"{path}: expected a mapping for {type_name}, got {type(data).__name__}")
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {key: strict_load(value, value_type, f"{path}.{key}") for key, value in data.items()}
    if type_name == "object":
        return data
    if type_name in _PRIMITIVES:
        wanted = _PRIMITIVES[type_name]
        if not isinstance(data, wanted) or (isinstance(data, bool) and bool not in wanted):
            raise SchemaError(f"{path}: expected {type_name}, got {type(data).__name__} {data!r}")
        return data
    klass = _model_class(type_name)
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected an object for {type_name}, got {type(data).__name__}")
    unknown = set(data) - set(klass.attribute_map.values())
    if unknown:
        raise SchemaError(f"{path}: {type_name} has no field(s) {', '.join(sorted(unknown))}")
    fields = {
        attr: strict_load(data[key], klass.openapi_types[attr], f"{path}.{key}")
        for attr, key in klass.attribute_map.items()
        if key in data
    }
    try:
        return klass(**fields)
    except ValueError as error:  # the generated models check required fields
        raise SchemaError(f"{path}: {error}") from None


def load_object(obj: dict[str, Any]) -> Any:
    kind = (obj.get("apiVersion"), obj.get("kind"))
    if kind not in MODEL_OF_KIND:
        raise SchemaError(f"{kind} is not a kind these manifests are meant to hold")
    return strict_load(obj, MODEL_OF_KIND[kind], f"{obj['kind']}/{obj['metadata']['name']}")


_built: dict[str, list[dict[str, Any]]] = {}


def namespace_of(overlay: str) -> str:
    return OWN_NAMESPACE if overlay == "base" else USER_NAMESPACE


@functools.cache
def manifest(model: str, version: str, namespace: str, *options: str) -> str:
    """What `python -m pipelines manifest` prints (its entry point, in this process; one test below
    runs the command itself)."""
    out = io.StringIO()
    saved = {key: os.environ.pop(key) for key in ("IMAGE_REGISTRY", "IMAGE_TAG") if key in os.environ}
    try:
        with contextlib.redirect_stdout(out):
            status = cli.main(["manifest", model, "--version", version, "--namespace", namespace, *options])
    finally:
        os.environ.update(saved)
    assert status == 0
    return out.getvalue()


def build(overlay: str) -> list[dict[str, Any]]:
    """The overlay plus each model's InferenceService from `manifest`, as a GitOps app holds them."""
    if overlay not in _built:
        with tempfile.TemporaryDirectory() as app:
            resources = [os.path.relpath(MANIFESTS / overlay, app)]
            for model, version in SERVED.items():
                Path(app, f"{model}.yaml").write_text(manifest(model, version, namespace_of(overlay)))
                resources.append(f"{model}.yaml")
            Path(app, "kustomization.yaml").write_text(yaml.safe_dump({"resources": resources}))
            result = subprocess.run(["kubectl", "kustomize", app], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
        _built[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return _built[overlay]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def serving_containers(isvc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container an InferenceService declares, in any component."""
    found = []
    for component in ("predictor", "transformer", "explainer"):
        spec = isvc["spec"].get(component) or {}
        found += spec.get("containers", []) + spec.get("initContainers", [])
        if "model" in spec:
            found.append(spec["model"])
    return found


# --- the strict loader itself ------------------------------------------------------------------


def test_strict_loader_rejects_unknown_and_mistyped_fields_with_their_path() -> None:
    good = build("base")
    isvc = next(o for o in good if o["kind"] == "InferenceService")
    misspelt = json.loads(json.dumps(isvc))
    misspelt["spec"]["predictor"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(SchemaError, match=r"containers\[0\]\.securityContext: V1SecurityContext has no field"):
        load_object(misspelt)
    mistyped = json.loads(json.dumps(isvc))
    mistyped["spec"]["predictor"]["containers"][0]["securityContext"]["runAsNonRoot"] = "true"
    with pytest.raises(SchemaError, match="runAsNonRoot: expected bool, got str"):
        load_object(mistyped)
    with pytest.raises(SchemaError, match="expected int, got bool"):
        strict_load({"containerPort": True}, "V1ContainerPort")
    with pytest.raises(SchemaError, match="container_port"):
        strict_load({"name": "http1"}, "V1ContainerPort")  # a required field missing
    with pytest.raises(SchemaError, match="not a kind"):
        load_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})


# --- every overlay ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", BUILDS)
def test_every_object_loads_into_the_typed_client_models(overlay: str) -> None:
    objects = build(overlay)
    kinds = {kind for _, kind in MODEL_OF_KIND}
    # a profile owns its namespace: only the base creates one
    assert {obj["kind"] for obj in objects} == (kinds if overlay == "base" else kinds - {"Namespace"})
    for obj in objects:
        load_object(obj)


@pytest.mark.parametrize("overlay", BUILDS)
def test_every_container_runs_as_non_root_without_escalation_and_has_requests_and_limits(overlay: str) -> None:
    isvcs = by_kind(build(overlay), "InferenceService")
    assert set(isvcs) == {"sum", "three-body"}
    for name, isvc in isvcs.items():
        containers = serving_containers(isvc)
        assert containers, f"{name} declares no container"
        for container in containers:
            where = f"{name}/{container.get('name')}"
            security = container.get("securityContext") or {}
            assert security.get("runAsNonRoot") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in (security.get("capabilities") or {}).get("drop", []), where
            assert (security.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where
            resources = container.get("resources") or {}
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request and limit, f"{where}: {resource} needs a request and a limit"
                assert parse_quantity(request) <= parse_quantity(limit), f"{where}: {resource} request > limit"


@pytest.mark.parametrize("overlay", BUILDS)
def test_no_secret_value_is_real_and_no_credential_is_inlined(overlay: str) -> None:
    objects = build(overlay)
    for name, secret in by_kind(objects, "Secret").items():
        values = [base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()]
        values += list((secret.get("stringData") or {}).values())
        assert values and set(values) == {PLACEHOLDER}, f"Secret {name} must hold only {PLACEHOLDER} placeholders"
    for name, isvc in by_kind(objects, "InferenceService").items():
        for container in serving_containers(isvc):
            for env in container.get("env", []):
                if any(word in env["name"] for word in ("KEY", "SECRET", "PASSWORD", "TOKEN")):
                    assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{name}: {env['name']} must come from a Secret"
                    )


@pytest.mark.parametrize("overlay", BUILDS)
def test_every_reference_resolves_within_the_build(overlay: str) -> None:
    objects = build(overlay)
    secrets, config_maps = by_kind(objects, "Secret"), by_kind(objects, "ConfigMap")
    accounts = by_kind(objects, "ServiceAccount")
    (account,) = accounts.values()
    assert account["metadata"]["name"] == SERVICE_ACCOUNT
    assert [s["name"] for s in account["secrets"]] == list(secrets)
    for name, isvc in by_kind(objects, "InferenceService").items():
        assert isvc["spec"]["predictor"]["serviceAccountName"] in accounts, name
        for container in serving_containers(isvc):
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    assert ref["key"] in secrets[ref["name"]]["stringData"], f"{name}: {env['name']}"
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    assert ref["key"] in config_maps[ref["name"]]["data"], f"{name}: {env['name']}"
    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    assert namespaces == {namespace_of(overlay)} and "kubeflow" not in namespaces
    assert [ns["metadata"]["name"] for ns in by_kind(objects, "Namespace").values()] == (
        [OWN_NAMESPACE] if overlay == "base" else []
    )


@pytest.mark.parametrize("overlay", BUILDS)
def test_kfp_launcher_sends_the_s3_pipeline_root_to_the_secret_it_can_read(overlay: str) -> None:
    objects = build(overlay)
    launcher = by_kind(objects, "ConfigMap")["kfp-launcher"]["data"]
    assert launcher["defaultPipelineRoot"] == "s3://mlpipeline/fuseml"
    providers = json.loads(launcher["providers"])
    assert set(providers) == {"s3"}
    s3 = providers["s3"]
    assert set(s3) <= KFP_S3_PROVIDER_KEYS["provider"]
    default = s3["default"]
    assert set(default) <= KFP_S3_PROVIDER_KEYS["default"]
    assert set(default["credentials"]) <= KFP_S3_PROVIDER_KEYS["credentials"]
    ref = default["credentials"]["secretRef"]
    assert set(ref) == KFP_S3_PROVIDER_KEYS["secretRef"] and default["credentials"]["fromEnv"] is False
    secret = by_kind(objects, "Secret")[ref["secretName"]]
    assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= set(secret["stringData"])
    assert default["disableSSL"] is True and default["forcePathStyle"] is True


@pytest.mark.parametrize("overlay", BUILDS)
def test_the_store_endpoint_agrees_in_all_three_places(overlay: str) -> None:
    objects = build(overlay)
    config_maps = by_kind(objects, "ConfigMap")
    annotations = by_kind(objects, "Secret")["fuseml-object-store"]["metadata"]["annotations"]
    endpoints = {
        config_maps["fuseml-object-store"]["data"]["MINIO_ENDPOINT"],
        annotations["serving.kserve.io/s3-endpoint"],
        json.loads(config_maps["kfp-launcher"]["data"]["providers"])["s3"]["default"]["endpoint"],
    }
    assert endpoints == {STORE_ENDPOINTS.get(overlay, "minio-service.kubeflow:9000")}
    assert annotations["serving.kserve.io/s3-usehttps"] == "0"


def test_the_store_overlays_really_differ() -> None:
    assert len(set(STORE_ENDPOINTS.values())) == len(STORE_ENDPOINTS)


@pytest.mark.parametrize("overlay", BUILDS)
def test_only_the_pipeline_runner_of_the_namespace_may_deploy_inference_services(overlay: str) -> None:
    objects = build(overlay)
    (role,) = by_kind(objects, "Role").values()
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "list", "watch", "create", "update"],
        }
    ]
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "default-editor", "namespace": binding["metadata"]["namespace"]}
    ]


def test_the_manifest_command_prints_what_the_deploy_step_builds() -> None:
    from components.images import DEFAULT_REGISTRY, DEFAULT_TAG

    for overlay in BUILDS:
        for name, isvc in by_kind(build(overlay), "InferenceService").items():
            built = build_inference_service(
                name, namespace_of(overlay), SERVED[name], f"{DEFAULT_REGISTRY}/predictor:{DEFAULT_TAG}"
            )
            expected = ApiClient().sanitize_for_serialization(built)
            assert isvc["spec"] == expected["spec"], name
            assert isvc["metadata"]["labels"] == expected["metadata"]["labels"], name


def test_each_inference_service_pins_its_version_with_both_probes_and_replica_bounds() -> None:
    for name, isvc in by_kind(build("overlays/minio"), "InferenceService").items():
        predictor = isvc["spec"]["predictor"]
        (container,) = predictor["containers"]
        command = container["command"]
        assert command[command.index("--model-version") + 1] == f"{name}={SERVED[name]}"
        assert "--no-repository-api" in command and command[command.index("--host") + 1] == "0.0.0.0"
        assert container["readinessProbe"]["httpGet"] == {"path": f"/v1/models/{name}", "port": 8080}
        assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
        assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleTarget"]) == (1, 3, 8)


def test_the_manifest_command_takes_canary_and_scaling_and_refuses_kubeflow() -> None:
    isvc = yaml.safe_load(
        manifest(
            "sum",
            "7",
            "serving",
            "--canary-percent",
            "20",
            "--min-replicas",
            "2",
            "--max-replicas",
            "5",
            "--scale-target",
            "4",
        )
    )
    load_object(isvc)
    predictor = isvc["spec"]["predictor"]
    assert (
        predictor["canaryTrafficPercent"],
        predictor["minReplicas"],
        predictor["maxReplicas"],
        predictor["scaleTarget"],
    ) == (20, 2, 5, 4)
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/enable-tag-routing": "true"}
    refused = subprocess.run(
        [sys.executable, "-m", "pipelines", "manifest", "sum", "--version", "7", "--namespace", "kubeflow"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert refused.returncode == 2 and "namespace 'kubeflow'" in refused.stderr and not refused.stdout
