"""Raw HTTP for the robustness tests: exact bytes and headers, any method, fresh connections."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest


def send(
    url: str,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    timeout: float = 30,
) -> tuple[int, Any]:
    """One request on a new connection: (status, decoded JSON body, or the text when not JSON)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        all_headers = {"Content-Type": content_type} if content_type else {}
        all_headers.update(headers or {})
        if chunked:
            connection.putrequest(method, path)
            for name, value in all_headers.items():
                connection.putheader(name, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for start in range(0, len(body), 64 * 1024):
                piece = body[start : start + 64 * 1024]
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
        else:
            connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")


def is_ready(url: str, model: str = "sum") -> bool:
    status, body = send(url, "GET", f"/v2/models/{model}/ready", content_type=None)
    return status == 200 and isinstance(body, dict) and body.get("ready") is True


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A summary line on the terminal, also under -q and without -s."""
    with request.getfixturevalue("capsys").disabled():
        print(f"\n{line}")
