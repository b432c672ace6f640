"""What stands between the network and the models: request limits and 4xx answers for bad input.

KServe builds one FastAPI app (`kserve_adapter.rest_app()`) and adds its routes, middleware and
exception handlers to it when the server starts. `install` adds ours to the same app beforehand
(see `build_server`):

- `RequestGuard`, an ASGI middleware that runs before any route reads the body:
  - a body over `max_body_bytes` gets a 413 naming the limit, from its Content-Length alone,
    or, for a chunked body, as soon as the bytes read pass the limit: nothing is parsed
    (up to 16 MiB of it are read and dropped first, see `_drain_limit`);
  - a prediction request without a Content-Type is JSON, as KServe's and Triton's servers read
    it (Triton's own client sends none), or V2's binary tensor extension when it carries an
    `Inference-Header-Content-Length`; a Content-Type that is present and neither JSON
    (`application/json`, `application/*+json`) nor `application/octet-stream` gets a 415;
  - with the repository API off, `/v2/repository/...` (loading and unloading versions) is a 403;
  - `/v2/models/<m>/versions/<v>/...` is served when <v> is the version being served, and a
    404 naming the served version otherwise (KServe answers every versioned path with a 501).
- exception handlers giving FastAPI's own errors (schema errors, JSON it could not parse,
  unknown path, wrong method) the same `{"error": message}` shape and a clear message;

Malformed bodies that KServe's decoders fail on are 400s by the data plane in `kserve_adapter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

_PREDICT_PATH = re.compile(r"^/v1/models/[^/]+:(predict|explain)$|^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
_V1_ACTION = re.compile(r"^/v1/models/(?P<model>[^/:]+):(?P<verb>[^/]*)$")
_VERSIONED_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")
_JSON_TYPES = ("application/json", "application/octet-stream")
_JSON = (b"content-type", b"application/json")
_BINARY = (b"content-type", b"application/octet-stream")
REPOSITORY_PREFIX = "/v2/repository/"
REPOSITORY_OFF = (
    "the model repository API is off on this server (--no-repository-api): "
    "the version served is fixed by the deployment"
)


class ClientError(Exception):
    """A request the server refuses, with the HTTP status and message the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestGuard:
    """ASGI middleware: body size limit, content types on predictions, versioned V2 paths, and
    (when off) the repository API."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        served_version: Callable[[str], str | None] | None = None,
        repository_api: bool = True,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.served_version = served_version  # model name -> the version it serves, None if none
        self.repository_api = repository_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, content_type, chunked, binary = None, None, False, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type":
                content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"inference-header-content-length":
                binary = True
        if length is not None and length > self.max_body_bytes:
            if length <= self._drain_limit:
                await _drain(receive)
            await _reply(scope, send, 413, self._too_large(f"{length} bytes"))
            return
        if length == -1:
            await _reply(scope, send, 400, "the Content-Length header is not a number")
            return
        path = scope["path"]
        action = _V1_ACTION.match(path)
        if action and action["verb"] not in ("predict", "explain"):  # not "a GET of model sum:frobnicate"
            await _reply(
                scope,
                send,
                404,
                f"unknown action :{action['verb']} on model {action['model']}: "
                f"use /v1/models/{action['model']}:predict",
            )
            return
        if _PREDICT_PATH.match(path):
            if scope["method"] != "POST":  # not a GET of model "sum:predict", which is what routing would say
                await _reply(
                    scope, send, 405, f"method {scope['method']} is not allowed on {path}; use POST", {"allow": "POST"}
                )
                return
            if content_type is None:  # what KServe's and Triton's servers assume, and Triton's client relies on
                scope = {**scope, "headers": [*scope["headers"], _BINARY if binary else _JSON]}
            else:
                problem = _content_type_problem(content_type)
                if problem:
                    await _reply(scope, send, 415, problem)
                    return
        elif not self.repository_api and path.startswith(REPOSITORY_PREFIX):
            await _reply(scope, send, 403, REPOSITORY_OFF)
            return
        if chunked:
            replayed = await self._read_chunked(scope, receive, send)
            if replayed is None:
                return
            receive = replayed
        versioned = _VERSIONED_PATH.match(path)
        if versioned and self.served_version is not None:
            unversioned = await self._unversion(scope, send, versioned)
            if unversioned is None:
                return
            scope = unversioned
        await self.app(scope, receive, send)

    @property
    def _drain_limit(self) -> int:
        """Bodies up to this size are read (and dropped) before the 413, so that a client that
        sends its whole body before reading the answer gets the 413 instead of a reset
        connection; beyond it the connection is closed at once."""
        return max(16 * 1024 * 1024, 4 * self.max_body_bytes)

    def _too_large(self, size: str) -> str:
        return (
            f"request body of {size} is over the limit of {self.max_body_bytes} bytes "
            f"(the server's --max-body-bytes); send fewer rows per request"
        )

    async def _read_chunked(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read a body of unknown length up to the limit, then hand it on; None when refused."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body", False):
                    await _drain(receive, self._drain_limit - size)
                await _reply(scope, send, 413, self._too_large(f"more than {self.max_body_bytes} bytes"))
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _unversion(self, scope: Scope, send: Send, match: re.Match) -> Scope | None:
        model, version, rest = match["model"], match["version"], match["rest"] or ""
        served = self.served_version(model) if self.served_version else None
        if served is not None and served != version:
            await _reply(
                scope, send, 404, f"model {model} version {version} is not served: the server serves version {served}"
            )
            return None
        path = f"/v2/models/{model}{rest}"  # unknown models fall through to KServe's 404
        return {**scope, "path": path, "raw_path": path.encode()}


async def _drain(receive: Receive, limit: int | None = None) -> None:
    """Read and drop the rest of a request body (at most `limit` more bytes)."""
    read = 0
    while limit is None or read <= limit:
        message = await receive()
        read += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _content_type_problem(content_type: str) -> str | None:
    if content_type in _JSON_TYPES or (content_type.startswith("application/") and content_type.endswith("+json")):
        return None
    return f"Content-Type {content_type} is not supported: send the JSON body with Content-Type: application/json"


async def _reply(scope: Scope, send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    if status == 413:  # the unread body makes the connection unusable for another request
        headers = {**(headers or {}), "connection": "close"}
    await JSONResponse({"error": message}, status_code=status, headers=headers)(scope, _no_receive, send)


async def _no_receive() -> dict[str, Any]:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}


async def _client_error(_: Request, error: ClientError) -> JSONResponse:
    return JSONResponse({"error": error.message}, status_code=error.status)


async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's schema errors for a V2 body, as one 400 message (without echoing the input)."""
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        if item.get("type") == "json_invalid":
            position = f" at character {loc[1]}" if len(loc) > 1 else ""
            return JSONResponse(
                {"error": f"the body is not valid JSON: {item.get('ctx', {}).get('error', '')}{position}"},
                status_code=400,
            )
        if len(loc) >= 2 and loc[1] == "bytes":  # the body may also be raw bytes: not a problem of its own
            continue
        where = ".".join(part for part in loc[1:] if part != "InferenceRequest") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    message = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return JSONResponse(
        {"error": f"invalid request: {message or 'the body does not match the schema'}"}, status_code=400
    )


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """FastAPI's and Starlette's own 4xx (unknown path, wrong method, unparseable body), as {"error": ...}."""
    message = str(error.detail)
    if error.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed on {request.url.path}" + (
            f"; use {allowed}" if allowed else ""
        )
    elif error.__cause__ is not None:
        message = f"{message}: {type(error.__cause__).__name__}: {str(error.__cause__)[:200]}"
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


def install(
    app: FastAPI,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    served_version: Callable[[str], str | None] | None = None,
    repository_api: bool = True,
) -> None:
    """Add the guard middleware and exception handlers to KServe's app, before the server starts."""
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestGuard]
    app.add_middleware(
        RequestGuard, max_body_bytes=max_body_bytes, served_version=served_version, repository_api=repository_api
    )
    # Starlette types a handler as taking any Exception; each of these is registered for its own class.
    app.add_exception_handler(ClientError, _client_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
