"""Real services for the tests: a SeaweedFS S3 store and a KServe model server, on free ports.

They run beside (never instead of) a user's `make run` services: own ports, own data folder,
own random credentials, own state directory.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_STATE = Path(tempfile.mkdtemp(prefix="fuseml-test-state-"))
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)  # pipeline roots and generated credentials
os.environ["LOCAL_STATE_DIR"] = str(_STATE)  # before pipelines.local_env is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from components.serving.client import is_live  # noqa: E402
from components.store.local_store import free_store_port, start_local_store, wait_until_ready  # noqa: E402
from components.store.object_store import ObjectStore, StoreConfig  # noqa: E402

# Defined here, before any test module loads TensorFlow: kfp's resource setters call
# inspect.stack(), whose cost grows with sys.modules (about 3 s to define every pipeline
# before TensorFlow is imported, over 20 s after).
from pipelines import registry as _pipelines  # noqa: E402, F401

# A test that starts a real service (every service fixture depends on one of these) must say so
# with `@pytest.mark.integration`, so that `make unit` (-m "not integration") never starts one.
SERVICE_FIXTURES = {"store_process", "model_server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("integration")
    ]
    if unmarked:
        raise pytest.UsageError("tests that start a service must be marked integration:\n  " + "\n  ".join(unmarked))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _store_port() -> int:
    return free_store_port(21000, 25000)


class StoreProcess:
    def __init__(self, config: StoreConfig, data_dir: Path, log: Path) -> None:
        self.config, self.data_dir, self.log = config, data_dir, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_local_store(self.config, self.data_dir, self.log)
        wait_until_ready(self.config, timeout=60)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def store_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    root = tmp_path_factory.mktemp("object-store")
    config = StoreConfig(f"127.0.0.1:{_store_port()}", f"test-{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    process = StoreProcess(config, root / "data", root / "weed.log")
    process.start()
    os.environ.update(
        {
            "MINIO_ENDPOINT": config.endpoint,
            "MINIO_ACCESS_KEY": config.access_key,
            "MINIO_SECRET_KEY": config.secret_key,
        }
    )
    yield process
    process.stop()


@pytest.fixture(scope="session")
def store_config(store_process: StoreProcess) -> StoreConfig:
    return store_process.config


@pytest.fixture()
def store(store_config: StoreConfig) -> ObjectStore:
    return ObjectStore(store_config)


@pytest.fixture()
def bucket(store: ObjectStore) -> str:
    name = f"test-{secrets.token_hex(4)}"
    store.ensure_bucket(name)
    return name


class ServerProcess:
    """A `python -m components.serving` process on free ports: REST at `url`, gRPC at `grpc`."""

    def __init__(self, log: Path, *options: str, host: str = "127.0.0.1") -> None:
        self.log, self.options = log, (*options, "--host", host)
        self.url = f"http://{host}:{free_port()}"
        self.grpc = f"{host}:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "components.serving",
                    "--http-port",
                    self.url.rsplit(":", 1)[1],
                    "--grpc-port",
                    self.grpc.rsplit(":", 1)[1],
                    "--cache-dir",
                    str(self.log.parent / "cache"),
                    *self.options,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        deadline = time.monotonic() + timeout
        while not is_live(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"model server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def model_server_process(
    store_config: StoreConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The tests' model server; its REST URL is also exported as MODEL_SERVER_URL."""
    server = ServerProcess(tmp_path_factory.mktemp("model-server") / "server.log")
    server.start()
    os.environ["MODEL_SERVER_URL"] = server.url
    yield server
    server.stop()


@pytest.fixture()
def new_model_server(store_config: StoreConfig, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Makes more model servers (not started) on the tests' store, with these server options; stops them after."""
    made: list[ServerProcess] = []

    def make(*options: str, host: str = "127.0.0.1") -> ServerProcess:
        made.append(ServerProcess(tmp_path / f"server-{len(made)}" / "server.log", *options, host=host))
        made[-1].log.parent.mkdir(parents=True)
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def model_server(model_server_process: ServerProcess) -> str:
    """The tests' model server's REST URL."""
    return model_server_process.url


@pytest.fixture(scope="session")
def model_server_grpc(model_server_process: ServerProcess) -> str:
    """The tests' model server's gRPC address (host:port)."""
    return model_server_process.grpc


@pytest.fixture(scope="session")
def deployed_sum(store_config: StoreConfig, model_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small real sum model, published and served by `model_server`: its version."""
    from components.deploy.deploy import deploy
    from components.serving.tests.conftest import tiny_sum_card, train_tiny_sum_model

    path = train_tiny_sum_model(tmp_path_factory.mktemp("sum-model") / "model")
    return deploy(ObjectStore(store_config), path, tiny_sum_card(), "local", model_server)


@pytest.fixture(scope="session")
def deployed_three_body(store_config: StoreConfig, model_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny real three-body network (one epoch on random targets), published and served: its version."""
    import numpy as np

    from components.deploy.deploy import deploy
    from components.saved_model import export
    from components.serving.tests.conftest import tiny_three_body_card
    from components.three_body.model import ThreeBodyTrainingConfig, train

    rng = np.random.default_rng(0)
    inputs = rng.uniform([0, -0.5, 0], [3.9, 0, 1], size=(200, 3))
    model = train(
        inputs, rng.normal(size=(200, 4)), ThreeBodyTrainingConfig(hidden_layers=2, units=8, epochs=1, batch_size=50)
    )
    path = tmp_path_factory.mktemp("three-body-model") / "model"
    export(model, path)
    return deploy(ObjectStore(store_config), path, tiny_three_body_card(), "local", model_server)


@pytest.fixture(scope="session")
def model_server_log(model_server_process: ServerProcess) -> Path:
    """The file `model_server` writes its output to."""
    return model_server_process.log.resolve()
