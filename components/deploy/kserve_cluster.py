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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

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
from components.store.model_registry import MODEL_BUCKET
from components.store.object_store import ACCESS_KEY_VAR, ENDPOINT_VAR, SECRET_KEY_VAR

log = logging.getLogger(__name__)

Action = Literal["created", "replaced", "promoted", "rolled-back", "failed"]

# Names shared with manifests/base: the KServe S3 secret, the endpoint ConfigMap, the ServiceAccount.
STORE_SECRET = "fuseml-object-store"
STORE_CONFIG = "fuseml-object-store"
SERVICE_ACCOUNT = "fuseml-models"
CONTAINER_NAME = "kserve-container"  # the name KServe gives the serving container of a predictor
MODEL_VERSION_ANNOTATION = "fuseml.io/model-version"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def default_resources() -> k8s.V1ResourceRequirements:
    """Sized for the project's server, which imports TensorFlow: ~600 MiB resident at rest."""
    return k8s.V1ResourceRequirements(requests={"cpu": "250m", "memory": "1Gi"},
                                      limits={"cpu": "1", "memory": "2Gi"})


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
        return k8s.V1EnvVar(name=var, value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=STORE_SECRET, key=key)))

    return [
        k8s.V1EnvVar(name=ENDPOINT_VAR, value_from=k8s.V1EnvVarSource(
            config_map_key_ref=k8s.V1ConfigMapKeySelector(name=STORE_CONFIG, key=ENDPOINT_VAR))),
        secret(ACCESS_KEY_VAR, "AWS_ACCESS_KEY_ID"),
        secret(SECRET_KEY_VAR, "AWS_SECRET_ACCESS_KEY"),
    ]


def build_inference_service(
    name: str,
    namespace: str,
    storage_uri: str,
    service_account: str,
    predictor_image: str,
    canary_percent: int | None,
    resources: k8s.V1ResourceRequirements,
    model_version: str | None = None,
) -> V1beta1InferenceService:
    """The InferenceService for one model, served by the project's predictor image.

    The server follows `s3://models/<name>/serving.json`, so `storage_uri` must be that
    prefix. `model_version` goes
    into a predictor annotation: a changed pod template is what makes Knative roll a new
    revision, without which a canary has nothing to split traffic with.
    """
    if not _DNS_1035.match(name):
        raise ValueError(f"InferenceService name {name!r} is not a DNS-1035 label (lower case, digits, '-')")
    if canary_percent is not None and not 0 < canary_percent < 100:
        raise ValueError(f"canary_percent must be between 1 and 99, got {canary_percent}")
    if not (resources.requests and resources.limits):
        raise ValueError("resources need both requests and limits")
    if not storage_uri.startswith("s3://"):
        raise ValueError(f"storage_uri must be an s3:// URI, got {storage_uri!r}")
    expected = f"s3://{MODEL_BUCKET}/{name}"
    if storage_uri.rstrip("/") != expected:
        raise ValueError(f"the project's server reads {expected}/serving.json; storage_uri {storage_uri!r} "
                         "would be ignored")
    predictor = V1beta1PredictorSpec(containers=[k8s.V1Container(
        name=CONTAINER_NAME,
        image=predictor_image,
        command=["python", "-m", "components.serving", "--models", name, "--cache-dir", "/tmp/model-cache"],
        env=store_env(),
        ports=[k8s.V1ContainerPort(container_port=8080, name="http1", protocol="TCP")],
        readiness_probe=k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path=f"/v1/models/{name}", port=8080)),
        resources=resources,
        security_context=hardened_security_context(),
    )])
    predictor.service_account_name = service_account
    predictor.canary_traffic_percent = canary_percent
    if model_version:
        predictor.annotations = {MODEL_VERSION_ANNOTATION: model_version}
    annotations = {TAG_ROUTING_ANNOTATION: "true"} if canary_percent is not None else None
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, annotations=annotations,
                                  labels={"app.kubernetes.io/part-of": "fuseml"}),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


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
                constants.KSERVE_GROUP, constants.KSERVE_V1BETA1_VERSION, namespace,
                constants.KSERVE_PLURAL_INFERENCESERVICE, name)
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
            self.kserve.wait_isvc_ready(name, namespace=namespace, timeout_seconds=timeout,
                                        polling_interval=min(self.poll_seconds, timeout),
                                        expected_generation=generation)
        except RuntimeError as error:
            raise TimeoutError(str(error)[:500]) from None
        return self.kserve.get(name, namespace=namespace)


@dataclass(frozen=True)
class DeployOutcome:
    name: str
    action: Action
    url: str | None  # the endpoint that was smoke-tested, None if it never got that far
    detail: str

    @property
    def serving_new(self) -> bool:
        """True when the new spec takes all traffic; otherwise the caller restores its own records."""
        return self.action in ("created", "replaced", "promoted")


@dataclass(frozen=True)
class _Check:
    passed: bool
    url: str | None
    detail: str


def endpoint_url(isvc: dict[str, Any], canary: bool) -> str | None:
    """The URL to smoke-test: with a canary, the `latest` tag's route, so the canary alone answers."""
    status = isvc.get("status") or {}
    if canary:
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        return next((t["url"] for t in traffic if t.get("tag") == "latest" and t.get("url")), None)
    return (status.get("address") or {}).get("url") or status.get("url")


def _prove(client: InferenceServices, written: dict[str, Any], timeout: float,
           smoke_test: Callable[[str], bool], canary: bool) -> _Check:
    name, namespace = written["metadata"]["name"], written["metadata"]["namespace"]
    try:
        ready = client.wait_ready(name, namespace, written["metadata"]["generation"], timeout)
    except TimeoutError as error:
        return _Check(False, None, f"not Ready within {timeout:g}s: {error}")
    url = endpoint_url(ready, canary)
    if url is None:
        why = "no 'latest' tagged route to test the canary alone" if canary else "no URL in its status"
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
    return klass(**{attr: _from_dict(data[key], klass.openapi_types[attr])
                    for attr, key in klass.attribute_map.items() if key in data})


def _previous(previous: dict[str, Any]) -> V1beta1InferenceService:
    """The spec that served before, fully rolled out (a canary left over from an older rollout is dropped)."""
    meta = previous["metadata"]
    restored = V1beta1InferenceService(
        api_version=previous["apiVersion"], kind=previous["kind"],
        metadata=k8s.V1ObjectMeta(name=meta["name"], namespace=meta["namespace"],
                                  labels=meta.get("labels"), annotations=meta.get("annotations")),
        spec=_from_dict(previous["spec"], "V1beta1InferenceServiceSpec"),
    )
    return _without_canary(restored)


def deploy_to_cluster(
    client: InferenceServices,
    isvc: V1beta1InferenceService,
    timeout: float,
    smoke_test: Callable[[str], bool],
    before_rollback: Callable[[], None] | None = None,
) -> DeployOutcome:
    """Roll `isvc` out and keep it only if it gets Ready and passes `smoke_test` (each wait up to `timeout`).

    A first deployment has nothing to roll back to: it is created without a canary and, if it
    fails, left in place for inspection (action "failed"). `before_rollback` runs before the
    previous spec is restored, so that a server which reads its version from a record (the
    project's predictor) comes back up on the restored record, not the rejected one.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    name, namespace = isvc.metadata.name, isvc.metadata.namespace
    canary = isvc.spec.predictor.canary_traffic_percent is not None
    previous = client.get(name, namespace)
    if previous is None:
        check = _prove(client, client.create(_without_canary(isvc)), timeout, smoke_test, canary=False)
        log.info("InferenceService %s/%s created: %s", namespace, name, check.detail)
        return DeployOutcome(name, "created" if check.passed else "failed", check.url, check.detail)

    check = _prove(client, client.replace(copy.deepcopy(isvc)), timeout, smoke_test, canary)
    if check.passed and not canary:
        return DeployOutcome(name, "replaced", check.url, check.detail)
    if check.passed:
        promoted = _prove(client, client.replace(_without_canary(isvc)), timeout, smoke_test, canary=False)
        if promoted.passed:
            return DeployOutcome(name, "promoted", promoted.url, f"canary: {check.detail}; promoted: {promoted.detail}")
        check = _Check(False, promoted.url, f"after promotion: {promoted.detail}")

    log.warning("InferenceService %s/%s: %s; rolling back", namespace, name, check.detail)
    if before_rollback is not None:
        before_rollback()
    restored = client.replace(_previous(previous))
    try:
        client.wait_ready(name, namespace, restored["metadata"]["generation"], timeout)
        detail = f"{check.detail}; previous spec restored and Ready"
    except TimeoutError as error:
        detail = f"{check.detail}; previous spec restored but not Ready within {timeout:g}s: {error}"
    return DeployOutcome(name, "rolled-back", check.url, detail)


def v1_smoke_test(model: str, instances: list[list[float]]) -> Callable[[str], bool]:
    """A smoke test for either runtime: a V1 predict answering one finite prediction per instance."""
    def smoke_test(url: str) -> bool:
        predictions = np.asarray(predict_v1(url, model, instances)["predictions"], dtype=float)
        return predictions.shape[:1] == (len(instances),) and bool(np.isfinite(predictions).all())

    return smoke_test
