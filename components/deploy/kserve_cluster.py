"""Serve a published model from a KServe InferenceService in a cluster, and undo a bad rollout.

A rollout creates or replaces the InferenceService, waits until the generation it wrote is
Ready, smoke-tests the endpoint, and with a canary either promotes (replace without the
canary) or rolls back (replace with the previous spec). It replaces, never patches: a JSON
merge patch cannot remove `canaryTrafficPercent`. The Kubernetes calls go through the small
`InferenceServices` protocol so the control flow is tested without a cluster.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import kserve
import numpy as np
from kserve import (
    KServeClient,
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1PredictorSpec,
    constants,
)
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from components.serving.client import predict_v1
from components.store.object_store import ACCESS_KEY_VAR, ENDPOINT_VAR, SECRET_KEY_VAR

log = logging.getLogger(__name__)

Action = Literal["created", "replaced", "promoted", "rolled-back", "failed"]

# Names shared with manifests/base: the KServe S3 secret, the endpoint ConfigMap, the ServiceAccount.
STORE_SECRET = "fuseml-object-store"
STORE_CONFIG = "fuseml-object-store"
SERVICE_ACCOUNT = "fuseml-models"
CONTAINER_NAME = "kserve-container"  # the name KServe gives the serving container of a predictor
MODEL_VERSION_LABEL = "fuseml.io/model-version"  # for `kubectl get isvc -L`; the command is what pins
HTTP_PORT = 8080
LIVENESS_PATH = "/v2/health/live"
# Namespaces KServe or Kubeflow keep for themselves; KServe's webhook skips `control-plane` ones.
RESERVED_NAMESPACES = frozenset({"kubeflow", "kserve", "knative-serving", "istio-system", "kube-system"})
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def default_resources() -> k8s.V1ResourceRequirements:
    """Sized for the project's server, which imports TensorFlow: ~600 MiB resident at rest."""
    return k8s.V1ResourceRequirements(requests={"cpu": "250m", "memory": "1Gi"}, limits={"cpu": "1", "memory": "2Gi"})


def hardened_security_context() -> k8s.V1SecurityContext:
    """A numeric non-root user, so `runAsNonRoot` is checkable whatever USER the image names."""
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=1000,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def store_env() -> list[k8s.V1EnvVar]:
    """The server's MINIO_* variables as references: credentials from the Secret, endpoint from a ConfigMap."""

    def secret(var: str, key: str) -> k8s.V1EnvVar:
        return k8s.V1EnvVar(
            name=var, value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=STORE_SECRET, key=key))
        )

    return [
        k8s.V1EnvVar(
            name=ENDPOINT_VAR,
            value_from=k8s.V1EnvVarSource(
                config_map_key_ref=k8s.V1ConfigMapKeySelector(name=STORE_CONFIG, key=ENDPOINT_VAR)
            ),
        ),
        secret(ACCESS_KEY_VAR, "AWS_ACCESS_KEY_ID"),
        secret(SECRET_KEY_VAR, "AWS_SECRET_ACCESS_KEY"),
    ]


@dataclass(frozen=True)
class Scaling:
    """Replica bounds and the autoscaler's target: requests in flight per replica by default."""

    min_replicas: int = 1
    max_replicas: int = 3
    scale_target: int = 8
    scale_metric: str = "concurrency"

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"replica bounds need 0 <= min <= max and max >= 1, got {self.min_replicas}...{self.max_replicas}"
            )
        if self.scale_target < 1:
            raise ValueError(f"scale_target must be positive, got {self.scale_target}")
        if self.scale_metric not in ("concurrency", "rps", "cpu", "memory"):
            raise ValueError(f"scale_metric {self.scale_metric!r}: choose concurrency, rps, cpu or memory")


def predictor_command(name: str, version: str) -> list[str]:
    """How the pod starts the server: on every address, REST only (the one port a Knative
    service routes), pinned to `version`, without the endpoints that would load another one."""
    return [
        "python",
        "-m",
        "components.serving",
        "--host",
        "0.0.0.0",
        "--http-port",
        str(HTTP_PORT),
        "--grpc-port",
        "0",
        "--models",
        name,
        "--model-version",
        f"{name}={version}",
        "--no-repository-api",
        "--cache-dir",
        "/tmp/model-cache",
    ]


def pinned_version(isvc: dict[str, Any]) -> str | None:
    """The model version an InferenceService (API JSON) serves, read from its container's command."""
    for container in isvc["spec"]["predictor"].get("containers") or []:
        command = container.get("command") or []
        if "--model-version" in command[:-1]:
            return command[command.index("--model-version") + 1].partition("=")[2] or None
    return None


def build_inference_service(
    name: str,
    namespace: str,
    model_version: str,
    predictor_image: str,
    service_account: str = SERVICE_ACCOUNT,
    canary_percent: int | None = None,
    resources: k8s.V1ResourceRequirements | None = None,
    scaling: Scaling | None = None,
) -> V1beta1InferenceService:
    """The InferenceService for one version of one model, served by the project's predictor image.

    The version is part of the pod spec (`--model-version`), never read from the mutable serving
    record: every deploy or rollback is a spec change, and a restarted pod serves what its
    revision names. Liveness (the server process) and readiness (this model loaded) are separate
    probes, so a store outage at start makes the pod unready, not restarted in a loop.
    """
    if not _DNS_1035.match(name):
        raise ValueError(f"InferenceService name {name!r} is not a DNS-1035 label (lower case, digits, '-')")
    if namespace in RESERVED_NAMESPACES:
        raise ValueError(
            f"namespace {namespace!r} is KServe's or Kubeflow's own: KServe does not reconcile "
            "InferenceServices there; use the profile namespace or one of your own"
        )
    if not model_version or "/" in model_version or "=" in model_version:
        raise ValueError(f"model_version {model_version!r} must name one published version")
    if canary_percent is not None and not 0 < canary_percent < 100:
        raise ValueError(f"canary_percent must be between 1 and 99, got {canary_percent}")
    resources = resources or default_resources()
    scaling = scaling or Scaling()
    if not (resources.requests and resources.limits):
        raise ValueError("resources need both requests and limits")
    predictor = V1beta1PredictorSpec(
        containers=[
            k8s.V1Container(
                name=CONTAINER_NAME,
                image=predictor_image,
                command=predictor_command(name, model_version),
                env=store_env(),
                ports=[k8s.V1ContainerPort(container_port=HTTP_PORT, name="http1", protocol="TCP")],
                readiness_probe=k8s.V1Probe(
                    http_get=k8s.V1HTTPGetAction(path=readiness_path(name), port=HTTP_PORT),
                    period_seconds=5,
                    failure_threshold=3,
                ),
                # TensorFlow's import takes seconds: liveness starts late and tolerates a slow answer.
                liveness_probe=k8s.V1Probe(
                    http_get=k8s.V1HTTPGetAction(path=LIVENESS_PATH, port=HTTP_PORT),
                    initial_delay_seconds=30,
                    period_seconds=10,
                    timeout_seconds=5,
                    failure_threshold=3,
                ),
                resources=resources,
                security_context=hardened_security_context(),
            )
        ],
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        scale_metric=scaling.scale_metric,
        scale_target=scaling.scale_target,
    )
    predictor.service_account_name = service_account
    predictor.canary_traffic_percent = canary_percent
    annotations = {TAG_ROUTING_ANNOTATION: "true"} if canary_percent is not None else None
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=namespace,
            annotations=annotations,
            labels={"app.kubernetes.io/part-of": "fuseml", MODEL_VERSION_LABEL: model_version},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def readiness_path(name: str) -> str:
    return f"/v1/models/{name}"


class InferenceServices(Protocol):
    """The Kubernetes calls a rollout makes; objects read back are the API server's JSON."""

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The InferenceService, or None when there is none."""

    def create(self, isvc: V1beta1InferenceService) -> dict[str, Any]: ...

    def replace(self, isvc: V1beta1InferenceService) -> dict[str, Any]: ...

    def wait_ready(self, name: str, namespace: str, generation: int, timeout: float) -> dict[str, Any]:
        """The object once `generation` is observed and Ready; TimeoutError otherwise."""


class KServeInferenceServices:
    """`InferenceServices` over `kserve.KServeClient` (kube config or in-cluster credentials)."""

    def __init__(self, kserve_client: KServeClient | None = None, poll_seconds: float = 5.0) -> None:
        self.kserve = kserve_client or KServeClient()
        self.poll_seconds = poll_seconds

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        # KServeClient.get turns every error into RuntimeError; a missing object must not look like a failure.
        try:
            return self.kserve.api_instance.get_namespaced_custom_object(
                constants.KSERVE_GROUP,
                constants.KSERVE_V1BETA1_VERSION,
                namespace,
                constants.KSERVE_PLURAL_INFERENCESERVICE,
                name,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, isvc: V1beta1InferenceService) -> dict[str, Any]:
        return self.kserve.create(isvc, namespace=isvc.metadata.namespace)

    def replace(self, isvc: V1beta1InferenceService) -> dict[str, Any]:
        return self.kserve.replace(isvc.metadata.name, isvc, namespace=isvc.metadata.namespace)

    def wait_ready(self, name: str, namespace: str, generation: int, timeout: float) -> dict[str, Any]:
        try:
            self.kserve.wait_isvc_ready(
                name,
                namespace=namespace,
                timeout_seconds=timeout,
                polling_interval=min(self.poll_seconds, timeout),
                expected_generation=generation,
            )
        except RuntimeError as error:
            raise TimeoutError(str(error)[:500]) from None
        return self.kserve.get(name, namespace=namespace)


@dataclass(frozen=True)
class DeployOutcome:
    name: str
    action: Action
    url: str | None  # the endpoint that was smoke-tested, None if it never got that far
    detail: str
    restored_version: str | None = None  # after a rollback, the version the restored spec pins

    @property
    def serving_new(self) -> bool:
        """True when the new spec takes all traffic; otherwise the caller restores its own records."""
        return self.action in ("created", "replaced", "promoted")


@dataclass(frozen=True)
class _Check:
    passed: bool
    url: str | None
    detail: str


SmokeAddress = Literal["cluster-local", "external"]
SMOKE_ADDRESSES: tuple[SmokeAddress, ...] = ("cluster-local", "external")
SMOKE_ADDRESS_VARIABLE = "SMOKE_TEST_ADDRESS"


def smoke_test_address() -> SmokeAddress:
    """Where the deploy step reaches a new revision: cluster-local unless SMOKE_TEST_ADDRESS says external."""
    wanted = os.environ.get(SMOKE_ADDRESS_VARIABLE, "cluster-local")
    for address in SMOKE_ADDRESSES:
        if wanted == address:
            return address
    raise ValueError(f"{SMOKE_ADDRESS_VARIABLE}={wanted!r}: choose one of {', '.join(SMOKE_ADDRESSES)}")


def endpoint_url(isvc: dict[str, Any], canary: bool, address: SmokeAddress = "cluster-local") -> str | None:
    """The URL to smoke-test; with a canary, the `latest` tag's route, so the canary alone answers.

    `cluster-local` (what a pipeline step can reach) is the predictor's in-cluster address, and for
    the canary Knative's tag address beside it (`latest-<route>.<ns>.svc.cluster.local`);
    `external` is the ingress URL, which a pod often cannot resolve.
    """
    status = isvc.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    if not canary:
        if address == "cluster-local":
            return (status.get("address") or {}).get("url")
        return status.get("url")
    tagged = next((t for t in predictor.get("traffic") or [] if t.get("tag") == "latest"), None)
    if tagged is None:
        return None
    if address == "external":
        return tagged.get("url")
    route = urlsplit((predictor.get("address") or {}).get("url") or "")
    return f"{route.scheme}://latest-{route.netloc}{route.path}" if route.netloc else None


def _prove(
    client: InferenceServices,
    written: dict[str, Any],
    timeout: float,
    smoke_test: Callable[[str], bool],
    canary: bool,
    address: SmokeAddress,
) -> _Check:
    name, namespace = written["metadata"]["name"], written["metadata"]["namespace"]
    try:
        ready = client.wait_ready(name, namespace, written["metadata"]["generation"], timeout)
    except TimeoutError as error:
        return _Check(False, None, f"not Ready within {timeout:g}s: {error}")
    url = endpoint_url(ready, canary, address)
    if url is None:
        why = "no 'latest' tagged route to test the canary alone" if canary else f"no {address} URL in its status"
        return _Check(False, None, f"Ready but {why}")
    try:
        passed = smoke_test(url)
    except Exception as error:  # whatever the smoke test raises, the rollout must be undone, not crash
        return _Check(False, url, f"smoke test at {url} raised {type(error).__name__}: {error}")
    return _Check(passed, url, f"smoke test at {url} {'passed' if passed else 'failed'}")


def _without_canary(isvc: V1beta1InferenceService) -> V1beta1InferenceService:
    promoted = copy.deepcopy(isvc)
    promoted.spec.predictor.canary_traffic_percent = None
    if promoted.metadata.annotations:
        promoted.metadata.annotations.pop(TAG_ROUTING_ANNOTATION, None)
    return promoted


def _from_dict(data: Any, type_name: str) -> Any:
    """JSON into kserve/kubernetes models, ignoring fields this client does not know (lenient)."""
    if data is None:
        return None
    if type_name.startswith("list["):
        return [_from_dict(item, type_name[5:-1]) for item in data]
    if type_name.startswith("dict("):
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {key: _from_dict(value, value_type) for key, value in data.items()}
    klass = getattr(kserve.models, type_name, None) or getattr(k8s, type_name, None)
    if klass is None or not hasattr(klass, "openapi_types"):
        return data  # str, int, bool, float, object: JSON already has the right shape
    return klass(
        **{
            attr: _from_dict(data[key], klass.openapi_types[attr])
            for attr, key in klass.attribute_map.items()
            if key in data
        }
    )


def _previous(previous: dict[str, Any]) -> V1beta1InferenceService:
    """The spec that served before, fully rolled out (a canary left over from an older rollout is dropped)."""
    meta = previous["metadata"]
    restored = V1beta1InferenceService(
        api_version=previous["apiVersion"],
        kind=previous["kind"],
        metadata=k8s.V1ObjectMeta(
            name=meta["name"],
            namespace=meta["namespace"],
            labels=meta.get("labels"),
            annotations=meta.get("annotations"),
        ),
        spec=_from_dict(previous["spec"], "V1beta1InferenceServiceSpec"),
    )
    return _without_canary(restored)


def deploy_to_cluster(
    client: InferenceServices,
    isvc: V1beta1InferenceService,
    timeout: float,
    smoke_test: Callable[[str], bool],
    address: SmokeAddress = "cluster-local",
) -> DeployOutcome:
    """Roll `isvc` out and keep it only if it gets Ready and passes `smoke_test` (each wait up to `timeout`).

    A first deployment has nothing to roll back to: it is created without a canary and, if it
    fails, left in place for inspection (action "failed"). A rollback restores the previous spec,
    and with it the version that spec pins: nothing outside the spec needs restoring first.
    `address` is where the smoke test calls (see `endpoint_url`).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if address not in SMOKE_ADDRESSES:
        raise ValueError(f"smoke test address {address!r}: choose one of {', '.join(SMOKE_ADDRESSES)}")
    name, namespace = isvc.metadata.name, isvc.metadata.namespace
    canary = isvc.spec.predictor.canary_traffic_percent is not None
    previous = client.get(name, namespace)
    if previous is None:
        check = _prove(client, client.create(_without_canary(isvc)), timeout, smoke_test, False, address)
        log.info("InferenceService %s/%s created: %s", namespace, name, check.detail)
        return DeployOutcome(name, "created" if check.passed else "failed", check.url, check.detail)

    check = _prove(client, client.replace(copy.deepcopy(isvc)), timeout, smoke_test, canary, address)
    if check.passed and not canary:
        return DeployOutcome(name, "replaced", check.url, check.detail)
    if check.passed:
        promoted = _prove(client, client.replace(_without_canary(isvc)), timeout, smoke_test, False, address)
        if promoted.passed:
            return DeployOutcome(name, "promoted", promoted.url, f"canary: {check.detail}; promoted: {promoted.detail}")
        check = _Check(False, promoted.url, f"after promotion: {promoted.detail}")

    log.warning("InferenceService %s/%s: %s; rolling back", namespace, name, check.detail)
    restored_spec = _previous(previous)
    restored = client.replace(restored_spec)
    try:
        client.wait_ready(name, namespace, restored["metadata"]["generation"], timeout)
        detail = f"{check.detail}; previous spec restored and Ready"
    except TimeoutError as error:
        detail = f"{check.detail}; previous spec restored but not Ready within {timeout:g}s: {error}"
    return DeployOutcome(name, "rolled-back", check.url, detail, restored_version=pinned_version(previous))


def v1_smoke_test(model: str, instances: list[list[float]]) -> Callable[[str], bool]:
    """A smoke test for either runtime: a V1 predict answering one finite prediction per instance."""

    def smoke_test(url: str) -> bool:
        predictions = np.asarray(predict_v1(url, model, instances)["predictions"], dtype=float)
        return predictions.shape[:1] == (len(instances),) and bool(np.isfinite(predictions).all())

    return smoke_test
