"""The cluster rollout without a cluster: an in-memory Kubernetes API stands in for KServe."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException

from components.deploy import kserve_cluster
from components.deploy.kserve_cluster import (
    KServeInferenceServices,
    Scaling,
    build_inference_service,
    default_resources,
    deploy_to_cluster,
    pinned_version,
    v1_smoke_test,
)

NS = "kubeflow-user-example-com"
CLUSTER_URL = f"http://sum.{NS}.svc.cluster.local"
EXTERNAL_URL = f"http://sum.{NS}.example.com"
# Knative's tag routes: the ingress host, and the cluster-local one beside the predictor's address
LATEST_URL = f"http://latest-sum-predictor.{NS}.svc.cluster.local"
LATEST_EXTERNAL_URL = f"http://latest-sum-predictor-{NS}.example.com"


def serialize(obj: Any) -> dict[str, Any]:
    return ApiClient().sanitize_for_serialization(obj)


def isvc(canary: int | None = None, version: str = "2", **overrides: Any):
    """The builder with the test's defaults (`version` is the model version it pins)."""
    args = dict(
        name="sum",
        namespace=NS,
        service_account="fuseml-models",
        predictor_image="registry.example/fuseml/predictor:0.1.0",
        canary_percent=canary,
        resources=default_resources(),
        model_version=version,
    )
    return build_inference_service(**{**args, **overrides})


class FakeCluster:
    """Records create/replace/get, keeps generations, and answers readiness from a script."""

    def __init__(self, ready: list[bool], existing: dict[str, Any] | None = None, tag_routes: bool = True) -> None:
        self.ready = list(ready)
        self.tag_routes = tag_routes
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        if existing is not None:
            self.objects[(NS, "sum")] = existing

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.calls.append(("get", name))
        found = self.objects.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, isvc) -> dict[str, Any]:
        body = serialize(isvc)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        assert key not in self.objects, "create on an existing InferenceService would be a 409"
        body["metadata"].update(generation=1, resourceVersion="1")
        self.objects[key] = body
        self.calls.append(("create", copy.deepcopy(body)))
        return copy.deepcopy(body)

    def replace(self, isvc) -> dict[str, Any]:
        body = serialize(isvc)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        old = self.objects[key]  # replacing a missing object would be a 404
        generation = old["metadata"]["generation"] + 1
        body["metadata"].update(generation=generation, resourceVersion=str(generation))
        body["status"] = old.get("status", {})
        self.objects[key] = body
        self.calls.append(("replace", copy.deepcopy(body)))
        return copy.deepcopy(body)

    def wait_ready(self, name: str, namespace: str, generation: int, timeout: float) -> dict[str, Any]:
        self.calls.append(("wait", generation))
        if not self.ready.pop(0):
            raise TimeoutError(f"generation {generation} never Ready")
        obj = self.objects[(namespace, name)]
        traffic = [{"revisionName": f"sum-predictor-{generation:05d}", "percent": 100, "latestRevision": True}]
        if self.tag_routes and obj["spec"]["predictor"].get("canaryTrafficPercent"):
            traffic[0].update(tag="latest", url=LATEST_EXTERNAL_URL)
        obj["status"] = {
            "observedGeneration": generation,
            "conditions": [{"type": "Ready", "status": "True"}],
            "url": EXTERNAL_URL,
            "address": {"url": CLUSTER_URL},
            "components": {
                "predictor": {"traffic": traffic, "address": {"url": f"http://sum-predictor.{NS}.svc.cluster.local"}}
            },
        }
        return copy.deepcopy(obj)

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [(verb, body) for verb, body in self.calls if verb in ("create", "replace")]


def existing_isvc() -> dict[str, Any]:
    body = serialize(isvc(version="1"))
    body["metadata"].update(
        generation=4, resourceVersion="4", annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    )
    body["status"] = {"observedGeneration": 4, "conditions": [{"type": "Ready", "status": "True"}]}
    return body


def smoke(results: dict[str, bool], seen: list[str]):
    def test(url: str) -> bool:
        seen.append(url)
        return results[url]

    return test


# --- the object built -------------------------------------------------------------------------


def test_predictor_runs_the_project_server_with_store_credentials_from_the_secret_only() -> None:
    spec = serialize(isvc())["spec"]["predictor"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry.example/fuseml/predictor:0.1.0"
    assert container["command"][:3] == ["python", "-m", "components.serving"]
    assert container["command"][3:] == [
        "--host",
        "0.0.0.0",
        "--http-port",
        "8080",
        "--grpc-port",
        "0",
        "--models",
        "sum",
        "--model-version",
        "sum=2",
        "--no-repository-api",
        "--cache-dir",
        "/tmp/model-cache",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == {"MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"}
    assert all("value" not in e for e in env.values()), "credentials must be references, never values"
    store = {"name": "fuseml-object-store"}
    assert env["MINIO_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {**store, "key": "AWS_ACCESS_KEY_ID"}
    assert env["MINIO_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {**store, "key": "AWS_SECRET_ACCESS_KEY"}
    assert env["MINIO_ENDPOINT"]["valueFrom"]["configMapKeyRef"] == {**store, "key": "MINIO_ENDPOINT"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/sum"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert spec["serviceAccountName"] == "fuseml-models"
    assert serialize(isvc())["metadata"]["labels"]["fuseml.io/model-version"] == "2"
    assert pinned_version(serialize(isvc())) == "2"
    assert "canaryTrafficPercent" not in spec


def test_replica_bounds_and_scale_target_are_parameters() -> None:
    spec = serialize(isvc())["spec"]["predictor"]
    bounds = (spec["minReplicas"], spec["maxReplicas"], spec["scaleMetric"], spec["scaleTarget"])
    assert bounds == (1, 3, "concurrency", 8)
    spec = serialize(isvc(scaling=Scaling(0, 10, 20, "rps")))["spec"]["predictor"]
    assert (spec["minReplicas"], spec["maxReplicas"], spec["scaleMetric"], spec["scaleTarget"]) == (0, 10, "rps", 20)
    for bad in (
        dict(min_replicas=4, max_replicas=3),
        dict(max_replicas=0, min_replicas=0),
        dict(scale_target=0),
        dict(scale_metric="latency"),
    ):
        with pytest.raises(ValueError):
            Scaling(**bad)


def test_the_predictor_is_hardened_and_sized() -> None:
    container = serialize(isvc())["spec"]["predictor"]["containers"][0]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


def test_a_canary_asks_for_tag_routing_so_the_canary_alone_can_be_tested() -> None:
    body = serialize(isvc(canary=10))
    assert body["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert body["metadata"]["annotations"] == {"serving.kserve.io/enable-tag-routing": "true"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "three_body"}, "DNS-1035"),
        ({"canary_percent": 0}, "between 1 and 99"),
        ({"canary_percent": 100}, "between 1 and 99"),
        ({"namespace": "kubeflow"}, "KServe does not reconcile"),
        ({"version": ""}, "must name one published version"),
        ({"version": "sum=3"}, "must name one published version"),
    ],
)
def test_bad_arguments_fail_before_anything_reaches_the_cluster(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        isvc(**overrides)


def test_resources_need_requests_and_limits() -> None:
    from kubernetes.client import V1ResourceRequirements

    with pytest.raises(ValueError, match="requests and limits"):
        isvc(resources=V1ResourceRequirements(requests={"cpu": "1"}))


# --- the rollout ------------------------------------------------------------------------------


def test_first_deployment_is_created_without_canary_and_smoke_tested() -> None:
    cluster, seen = FakeCluster(ready=[True]), []
    outcome = deploy_to_cluster(cluster, isvc(canary=10), 60, smoke({CLUSTER_URL: True}, seen))
    assert (outcome.action, outcome.url, outcome.serving_new) == ("created", CLUSTER_URL, True)
    [(verb, body)] = cluster.writes()
    assert verb == "create" and "canaryTrafficPercent" not in body["spec"]["predictor"]
    assert seen == [CLUSTER_URL]


def test_first_deployment_that_never_gets_ready_fails_without_smoke_test_or_rollback() -> None:
    cluster, seen = FakeCluster(ready=[False]), []
    outcome = deploy_to_cluster(cluster, isvc(), 60, smoke({}, seen))
    assert (outcome.action, outcome.url, outcome.serving_new) == ("failed", None, False)
    assert "not Ready" in outcome.detail
    assert [verb for verb, _ in cluster.writes()] == ["create"] and seen == []


def test_without_canary_an_existing_service_is_replaced_and_readiness_waits_for_the_new_generation() -> None:
    cluster, seen = FakeCluster(ready=[True], existing=existing_isvc()), []
    outcome = deploy_to_cluster(cluster, isvc(), 60, smoke({CLUSTER_URL: True}, seen))
    assert outcome.action == "replaced"
    assert [c for c in cluster.calls if c[0] != "replace"] == [("get", "sum"), ("wait", 5)]
    [(verb, body)] = cluster.writes()
    assert verb == "replace" and pinned_version(body) == "2"


def test_a_healthy_canary_is_smoke_tested_on_its_own_route_then_promoted_by_replace() -> None:
    cluster, seen = FakeCluster(ready=[True, True], existing=existing_isvc()), []
    outcome = deploy_to_cluster(cluster, isvc(canary=10), 60, smoke({LATEST_URL: True, CLUSTER_URL: True}, seen))
    assert (outcome.action, outcome.url) == ("promoted", CLUSTER_URL)
    assert seen == [LATEST_URL, CLUSTER_URL]
    (_, canary), (_, promoted) = cluster.writes()
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert "serving.kserve.io/enable-tag-routing" not in (promoted["metadata"].get("annotations") or {})
    assert pinned_version(promoted) == "2"


def test_a_canary_failing_its_smoke_test_is_rolled_back_to_the_previous_spec_and_its_version() -> None:
    previous = existing_isvc()
    cluster, seen = FakeCluster(ready=[True, True], existing=previous), []
    outcome = deploy_to_cluster(cluster, isvc(canary=10), 60, smoke({LATEST_URL: False}, seen))
    assert (outcome.action, outcome.serving_new, outcome.restored_version) == ("rolled-back", False, "1")
    assert "smoke test" in outcome.detail and "restored and Ready" in outcome.detail
    (_, canary), (verb, restored) = cluster.writes()
    assert verb == "replace" and pinned_version(canary) == "2"
    assert restored["spec"] == previous["spec"] and pinned_version(restored) == "1"
    assert restored["metadata"]["annotations"] == previous["metadata"]["annotations"]


def test_the_smoke_test_calls_the_cluster_local_addresses_unless_told_external() -> None:
    seen: list[str] = []
    outcome = deploy_to_cluster(
        FakeCluster(ready=[True, True], existing=existing_isvc()),
        isvc(canary=10),
        60,
        smoke({LATEST_EXTERNAL_URL: True, EXTERNAL_URL: True}, seen),
        address="external",
    )
    assert outcome.action == "promoted" and seen == [LATEST_EXTERNAL_URL, EXTERNAL_URL]
    with pytest.raises(ValueError, match="smoke test address"):
        deploy_to_cluster(FakeCluster(ready=[]), isvc(), 60, smoke({}, []), address="ingress")  # type: ignore[arg-type]


def test_a_canary_that_never_gets_ready_is_rolled_back_without_smoke_test() -> None:
    cluster, seen = FakeCluster(ready=[False, True], existing=existing_isvc()), []
    outcome = deploy_to_cluster(cluster, isvc(canary=25), 60, smoke({}, seen))
    assert outcome.action == "rolled-back" and "not Ready within 60s" in outcome.detail
    assert seen == []
    assert [v for v, _ in cluster.writes()] == ["replace", "replace"]


def test_a_smoke_test_that_raises_rolls_back_instead_of_crashing() -> None:
    def broken(url: str) -> bool:
        raise RuntimeError("V1 predict on sum failed with HTTP 503")

    cluster = FakeCluster(ready=[True, True], existing=existing_isvc())
    outcome = deploy_to_cluster(cluster, isvc(canary=10), 60, broken)
    assert outcome.action == "rolled-back" and "HTTP 503" in outcome.detail


def test_a_promotion_that_fails_its_smoke_test_is_rolled_back_too() -> None:
    cluster, seen = FakeCluster(ready=[True, True, True], existing=existing_isvc()), []
    outcome = deploy_to_cluster(cluster, isvc(canary=10), 60, smoke({LATEST_URL: True, CLUSTER_URL: False}, seen))
    assert outcome.action == "rolled-back" and outcome.detail.startswith("after promotion")
    assert [v for v, _ in cluster.writes()] == ["replace", "replace", "replace"]
    assert cluster.writes()[-1][1]["spec"] == existing_isvc()["spec"]


def test_a_canary_without_a_tagged_route_is_not_tested_through_the_mixed_route() -> None:
    cluster, seen = FakeCluster(ready=[True, True], existing=existing_isvc(), tag_routes=False), []
    outcome = deploy_to_cluster(cluster, isvc(canary=10), 60, smoke({CLUSTER_URL: True}, seen))
    assert outcome.action == "rolled-back" and "latest" in outcome.detail
    assert seen == []


def test_a_rollback_that_does_not_get_ready_says_so() -> None:
    cluster = FakeCluster(ready=[False, False], existing=existing_isvc())
    outcome = deploy_to_cluster(cluster, isvc(), 60, smoke({}, []))
    assert outcome.action == "rolled-back" and "restored but not Ready" in outcome.detail


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        deploy_to_cluster(FakeCluster(ready=[]), isvc(), 0, smoke({}, []))


# --- the adapter over KServeClient and the smoke test -----------------------------------------


class StubKServeClient:
    """Only what the adapter calls, with KServeClient's signatures."""

    def __init__(self, status: int | None = None, wait_error: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.status, self.wait_error = status, wait_error
        self.api_instance = self

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get_custom", group, version, namespace, plural, name))
        if self.status:
            raise ApiException(status=self.status, reason="Not Found" if self.status == 404 else "Forbidden")
        return {"metadata": {"name": name}}

    def replace(self, name, inferenceservice, namespace=None, watch=False, timeout_seconds=600):
        self.calls.append(("replace", name, namespace))
        return {"metadata": {"name": name, "generation": 2}}

    def wait_isvc_ready(
        self,
        name,
        namespace=None,
        watch=False,
        timeout_seconds=600,
        polling_interval=10,
        version="v1beta1",
        expected_generation=None,
    ):
        self.calls.append(("wait", name, namespace, timeout_seconds, polling_interval, expected_generation))
        if self.wait_error:
            raise RuntimeError(self.wait_error)

    def get(self, name=None, namespace=None, watch=False, timeout_seconds=600, version="v1beta1"):
        return {"metadata": {"name": name}, "status": {}}


def test_adapter_reports_a_missing_inference_service_as_none_and_other_errors_as_errors() -> None:
    stub = StubKServeClient(status=404)
    assert KServeInferenceServices(stub).get("sum", NS) is None
    assert stub.calls == [("get_custom", "serving.kserve.io", "v1beta1", NS, "inferenceservices", "sum")]
    with pytest.raises(ApiException):
        KServeInferenceServices(StubKServeClient(status=403)).get("sum", NS)


def test_adapter_replaces_by_name_and_waits_for_the_generation_written() -> None:
    stub = StubKServeClient()
    adapter = KServeInferenceServices(stub, poll_seconds=5)
    adapter.replace(isvc())
    adapter.wait_ready("sum", NS, 7, 120)
    assert stub.calls == [("replace", "sum", NS), ("wait", "sum", NS, 120, 5, 7)]
    with pytest.raises(TimeoutError, match="Timeout to start"):
        KServeInferenceServices(StubKServeClient(wait_error="Timeout to start the InferenceService sum")).wait_ready(
            "sum", NS, 7, 120
        )


@pytest.mark.parametrize(
    "predictions, passed",
    [
        ([[3.0], [7.0]], True),  # TF Serving's shape
        ([3.0, 7.0], True),  # the project's server
        ([[3.0]], False),  # one answer short
        ([[3.0], [float("nan")]], False),
    ],
)
def test_v1_smoke_test_wants_one_finite_prediction_per_instance(monkeypatch, predictions, passed) -> None:
    calls = []

    def fake_predict(url: str, model: str, instances: list) -> dict:
        calls.append((url, model, instances))
        return {"predictions": predictions}

    monkeypatch.setattr(kserve_cluster, "predict_v1", fake_predict)
    assert v1_smoke_test("sum", [[1, 2], [3, 4]])(CLUSTER_URL) is passed
    assert calls == [(CLUSTER_URL, "sum", [[1, 2], [3, 4]])]


def test_the_smoke_test_address_comes_from_the_environment(monkeypatch) -> None:
    from components.deploy.kserve_cluster import smoke_test_address

    monkeypatch.delenv("SMOKE_TEST_ADDRESS", raising=False)
    assert smoke_test_address() == "cluster-local"
    monkeypatch.setenv("SMOKE_TEST_ADDRESS", "external")
    assert smoke_test_address() == "external"
    monkeypatch.setenv("SMOKE_TEST_ADDRESS", "ingress")
    with pytest.raises(ValueError, match="SMOKE_TEST_ADDRESS='ingress'"):
        smoke_test_address()
