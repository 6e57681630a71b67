"""Turn a server URL into a client, and a dead server into one clear error.

Every operational command (``submit``, ``status``, ``dlq`` …) and every worker goes
through here, so the choices that matter for the wire live in one place: raw bytes
(``decode_responses=False``, because payloads are JSON bytes and ids are compared as
bytes), a bounded connect timeout, and a message that names the URL (password hidden)
and says what to do when nothing answers.

Cluster URLs (``redis+cluster://``) are recognised so that a cluster client can be
returned from :func:`connect` later without touching callers; for now they are refused
with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from meshc.runtime.errors import MeshRuntimeError

CONNECT_TIMEOUT = 5.0
SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class MeshOpsError(MeshRuntimeError):
    """Base of the errors raised by meshc's operational modules (server, client, admin).

    The CLI catches this one class, prints its message and exits 2, so every subclass
    carries a message written for a person at a terminal.
    """


class ConnectError(MeshOpsError):
    """Raised when a URL cannot be used (unknown scheme, cluster not yet supported)."""


class ServerUnreachable(ConnectError):
    """Raised when nothing answers at the URL, or it refuses our credentials."""


@dataclass(frozen=True)
class Target:
    """A parsed server URL: which kind of client it needs."""

    url: str
    cluster: bool


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print and log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse_url(url: str) -> Target:
    """Check the scheme up front, so a typo fails here and not deep inside redis-py."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in SINGLE_SCHEMES:
        return Target(url=url, cluster=False)
    if scheme in CLUSTER_SCHEMES:
        return Target(url=url, cluster=True)
    allowed = ", ".join(f"{s}://" for s in SINGLE_SCHEMES + CLUSTER_SCHEMES)
    raise ConnectError(f"unsupported server URL {redact(url)!r}: use one of {allowed}")


def _single_target(url: str) -> Target:
    target = parse_url(url)
    if target.cluster:
        raise ConnectError(
            f"cluster URL {redact(url)!r}: cluster mode is not supported yet; "
            "point --redis at a single server (redis:// or rediss://)"
        )
    return target


def _unreachable(url: str, err: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"cannot reach the server at {redact(url)}: {err}. Check --redis / REDIS_URL, "
        "or start the embedded server of this folder with `meshc server start`"
    )


def connect(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    check: bool = True,
) -> redis.Redis:
    """A synchronous client for ``url``; with ``check`` it pings so failures surface now.

    ``username``/``password`` apply when the URL carries none (redis-py lets the URL
    win), which is how ``meshc run --acl`` lets each agent log in as its own user
    without writing secrets into URLs.
    """
    target = _single_target(url)
    extra = _credentials(username, password)
    client = redis.Redis.from_url(
        target.url, decode_responses=False, socket_connect_timeout=CONNECT_TIMEOUT, **extra
    )
    if check:
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as err:
            client.close()
            raise _unreachable(url, err) from err
    return client


def connect_async(
    url: str, *, username: str | None = None, password: str | None = None
) -> redis.asyncio.Redis:
    """An asyncio client for ``url``; connects lazily (call :func:`check_async` to ping)."""
    target = _single_target(url)
    extra = _credentials(username, password)
    return redis.asyncio.Redis.from_url(
        target.url, decode_responses=False, socket_connect_timeout=CONNECT_TIMEOUT, **extra
    )


async def check_async(client: redis.asyncio.Redis, url: str) -> None:
    """Ping once, turning connection failures into :class:`ServerUnreachable`."""
    try:
        await client.ping()
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as err:
        raise _unreachable(url, err) from err


def _credentials(username: str | None, password: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if username is not None:
        extra["username"] = username
    if password is not None:
        extra["password"] = password
    return extra
