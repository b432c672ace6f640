"""A client of the V2 model repository endpoint: how a deploy has the local model server load a version."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class DeployError(RuntimeError):
    """The server did not end up serving the version asked for."""


def _request(method: str, url: str, timeout: float) -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise DeployError(f"{method} {url}: HTTP {error.code}: {error.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DeployError(f"{method} {url}: model server unreachable ({error}); start it with `make run`") from None


def served_version(server_url: str, name: str, timeout: float = 10.0) -> str | None:
    metadata = _request("GET", f"{server_url}/v2/models/{name}", timeout)
    versions = metadata.get("versions") or []
    return versions[0] if versions else None


def load_version(server_url: str, name: str, version: str, timeout: float = 120.0) -> None:
    """Ask the server to reload `name` from the store, then check it serves `version`."""
    _request("POST", f"{server_url}/v2/repository/models/{name}/load", timeout)
    serving = served_version(server_url, name)
    if serving != version:
        raise DeployError(f"model server serves {name} version {serving}, expected {version}")
