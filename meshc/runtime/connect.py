"""Turn a server URL into a client, and a dead server into one clear error.

Every operational command (``submit``, ``status``, ``dlq`` …) and every worker goes
through here, so the choices that matter for the wire live in one place: raw bytes
(``decode_responses=False``, because payloads are JSON bytes and ids are compared as
bytes), a bounded connect timeout, and a message that names the URL (password hidden)
and says what to do when nothing answers.

Cluster URLs (``redis+cluster://host:port[,host:port…]``, ``rediss+cluster://``) give
a ``redis-py`` cluster client from the same functions (see :mod:`meshc.runtime.cluster`),
so callers keep one code path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import redis
import redis.asyncio
from meshc.runtime import cluster
from meshc.runtime.errors import ConnectError, MeshOpsError, ServerUnreachable
from meshc.runtime.urls import Target, parse_url, redact
from redis.exceptions import RedisClusterException

__all__ = [
    "ConnectError",
    "MeshOpsError",
    "ServerUnreachable",
    "Target",
    "check_async",
    "connect",
    "connect_async",
    "parse_url",
    "redact",
]

CONNECT_TIMEOUT = 5.0


def _unreachable(url: str, err: Exception) -> ServerUnreachable:
    if isinstance(err, redis.AuthenticationError):
        wrong = "invalid username-password" in str(err) or "WRONGPASS" in str(err)
        reason = "wrong user name or password" if wrong else "it requires a password"
        return ServerUnreachable(
            f"the server at {redact(url)} refused to log us in: {reason}. Put a user and "
            "password in the URL (redis://USER:PASSWORD@host:port); after `meshc run "
            "--acl` the operator's password is in .meshc/acl-secrets.json. Without a URL, "
            "meshc logs in to the folder's embedded server with .meshc/server.pass"
        )
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
    target = parse_url(url)
    extra = _credentials(username, password)
    if target.cluster:
        return _connect_cluster(url, extra)
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


@contextlib.contextmanager
def using(url: str | redis.Redis) -> Iterator[redis.Redis]:
    """A client for one call: the one given (left open), or a new one closed afterwards,
    so operator functions take a URL from the CLI or a client from a caller alike."""
    if not isinstance(url, str):  # a client (single server or cluster) given by the caller
        yield url
        return
    client = connect(url)
    try:
        yield client
    finally:
        client.close()


def connect_async(
    url: str, *, username: str | None = None, password: str | None = None
) -> redis.asyncio.Redis:
    """An asyncio client for ``url``; connects lazily (call :func:`check_async` to ping)."""
    target = parse_url(url)
    extra = _credentials(username, password)
    if target.cluster:
        client = cluster.async_client(url, socket_connect_timeout=CONNECT_TIMEOUT, **extra)
        return cast(redis.asyncio.Redis, client)
    return redis.asyncio.Redis.from_url(
        target.url, decode_responses=False, socket_connect_timeout=CONNECT_TIMEOUT, **extra
    )


async def check_async(client: redis.asyncio.Redis, url: str) -> None:
    """Ping once, turning connection failures into :class:`ServerUnreachable`."""
    try:
        await client.ping()
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as err:
        raise _unreachable(url, err) from err
    except RedisClusterException as err:
        raise _not_a_cluster(url, err) from err


def _connect_cluster(url: str, extra: dict[str, Any]) -> redis.Redis:
    """A cluster client typed as the single-server one callers expect (it answers every
    command they use with the same signature); redis-py connects it at once."""
    try:
        client = cluster.sync_client(url, socket_connect_timeout=CONNECT_TIMEOUT, **extra)
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as err:
        raise _unreachable(url, err) from err
    except RedisClusterException as err:
        raise _not_a_cluster(url, err) from err
    return cast(redis.Redis, client)


def _not_a_cluster(url: str, err: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"no usable cluster at {redact(url)}: {err}. A redis+cluster:// URL (or --cluster) "
        "needs a node of a Redis/Valkey Cluster; for a single server use redis://"
    )


def _credentials(username: str | None, password: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if username is not None:
        extra["username"] = username
    if password is not None:
        extra["password"] = password
    return extra
