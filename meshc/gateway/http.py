"""HTTP plumbing of the gateway: JSON responses, problems, bearer auth, body limits.

Every error a caller can get is a JSON object with an ``error`` message that says
what to do, and the status code that lets a client act without reading it (401
re-authenticate, 413 send less, 429/503 retry after ``Retry-After`` seconds).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from meshc.gateway.config import Tokens
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})
log = logging.getLogger("meshc.gateway")


class TooLarge(Exception):
    """Raised while reading a body that is over the limit."""


def json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


def problem(status: int, message: str, **headers: str) -> Response:
    return json({"error": message}, status, {k.replace("_", "-"): v for k, v in headers.items()})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is over ``limit`` bytes (Content-Length first,
    then while it streams, for a client that sends no length or lies about it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class BearerAuth:
    """ASGI middleware: every path but the health check needs a valid bearer token.

    ``tokens`` None (``--no-auth``) lets everything through.
    """

    def __init__(self, app: ASGIApp, tokens: Tokens | None) -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.tokens is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.tokens.accepts(_bearer(scope)):
            await self.app(scope, receive, send)
            return
        refused = problem(
            401,
            "a valid token is needed: send the header `Authorization: Bearer <token>`",
            WWW_Authenticate='Bearer realm="meshc"',
        )
        await refused(scope, receive, send)


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""
