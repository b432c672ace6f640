"""The embedded stand-ins for one machine: a SeaweedFS S3 store and the KServe model server.

They are started on demand, keep running after a run (so users can query the model), and are
stopped by `make stop`. State lives in `.local/` in the project: credentials generated on first
use (never committed), store data, pipeline root, logs and pid files.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from minio.error import S3Error

from components.serving.client import is_live
from components.store.local_store import start_local_store, wait_until_ready
from components.store.object_store import ACCESS_KEY_VAR, SECRET_KEY_VAR, StoreConfig, StoreError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("LOCAL_STATE_DIR", PROJECT_ROOT / ".local"))
MODEL_SERVER_URL_VAR = "MODEL_SERVER_URL"
DEFAULT_MODEL_SERVER_URL = "http://127.0.0.1:8080"
MODEL_SERVER_GRPC_PORT_VAR = "MODEL_SERVER_GRPC_PORT"  # the Open Inference Protocol over gRPC
DEFAULT_MODEL_SERVER_GRPC_PORT = "8081"


def model_server_url() -> str:
    return os.environ.get(MODEL_SERVER_URL_VAR, DEFAULT_MODEL_SERVER_URL).rstrip("/")


def load_credentials(state_dir: Path = STATE_DIR) -> None:
    """Use MINIO_* from the environment, or local credentials made once for this checkout."""
    if os.environ.get(ACCESS_KEY_VAR) and os.environ.get(SECRET_KEY_VAR):
        return
    env_file = state_dir / "store.env"
    if not env_file.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        env_file.touch(mode=0o600)
        env_file.write_text(
            f"{ACCESS_KEY_VAR}=local-{secrets.token_hex(6)}\n{SECRET_KEY_VAR}={secrets.token_urlsafe(24)}\n"
        )
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip())


def _is_local(endpoint: str) -> bool:
    return endpoint.split(":")[0] in ("127.0.0.1", "localhost")


def _refuses_credentials(error: Exception) -> bool:
    """A server answered S3 and rejected the keys: not ours, and not one that is still starting."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, S3Error):
        cause = cause.__cause__
    return cause is not None and cause.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch")


def _write_pid(name: str, process: subprocess.Popen[bytes], state_dir: Path) -> None:
    (state_dir / f"{name}.pid").write_text(str(process.pid))


def ensure_store(state_dir: Path = STATE_DIR) -> StoreConfig:
    """Reach the configured store, starting the embedded one when it is local and down."""
    load_credentials(state_dir)
    config = StoreConfig.from_env()
    try:
        wait_until_ready(config, timeout=1.0)
        return config
    except Exception as error:
        if not _is_local(config.endpoint):
            raise
        if _refuses_credentials(error):  # starting a store on its port would fail, a minute later
            raise StoreError(
                f"the S3 server on {config.endpoint} refuses this checkout's credentials ({state_dir / 'store.env'} "
                f"or {ACCESS_KEY_VAR}/{SECRET_KEY_VAR}): it is another store, perhaps another checkout's. "
                f"Stop it (`make stop` there) or set MINIO_ENDPOINT to a free port. ({error})"
            ) from None
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    print(f"starting the local object store (SeaweedFS S3) on {config.endpoint}", flush=True)
    process = start_local_store(config, state_dir / "store-data", state_dir / "logs" / "object-store.log")
    _write_pid("object-store", process, state_dir)
    wait_until_ready(config, timeout=60.0)
    return config


def ensure_model_server(state_dir: Path = STATE_DIR, url: str | None = None) -> str:
    """Start the KServe model server in the background unless one already answers."""
    url = url or model_server_url()
    if is_live(url):
        return url
    ensure_store(state_dir)
    port = url.rsplit(":", 1)[1]
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    print(
        f"starting the local KServe model server on {url} (gRPC on port "
        f"{os.environ.get(MODEL_SERVER_GRPC_PORT_VAR, DEFAULT_MODEL_SERVER_GRPC_PORT)})",
        flush=True,
    )
    with (state_dir / "logs" / "model-server.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "components.serving",
                "--http-port",
                port,
                "--grpc-port",
                os.environ.get(MODEL_SERVER_GRPC_PORT_VAR, DEFAULT_MODEL_SERVER_GRPC_PORT),
                "--cache-dir",
                str(state_dir / "model-cache"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=PROJECT_ROOT,
        )
    _write_pid("model-server", process, state_dir)
    deadline = time.monotonic() + 120
    while not is_live(url):
        if process.poll() is not None:
            raise RuntimeError(f"model server exited; see {state_dir / 'logs' / 'model-server.log'}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"model server not live after 120s; see {state_dir / 'logs' / 'model-server.log'}")
        time.sleep(0.5)
    return url


def stop(state_dir: Path = STATE_DIR) -> list[str]:
    """Stop what `ensure_*` started (and only that), by pid file."""
    stopped = []
    for pid_file in sorted(state_dir.glob("*.pid")):
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid_file.unlink()
        stopped.append(pid_file.stem)
    return stopped
