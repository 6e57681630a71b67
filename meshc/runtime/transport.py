"""How a worker connects: a single server, or a cluster (:mod:`meshc.runtime.cluster`),
and which server errors it waits out rather than dies of.

redis-py's asyncio connections pack commands in pure Python, re-joining the growing
buffer for every argument; a commit script call carries thousands of arguments per
batch, which made packing the biggest cost of the hot path. The connection class is
given hiredis's C packer instead (what redis-py's own synchronous client uses),
keeping TLS and unix-socket classes as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from hiredis import pack_command as _hiredis_pack
from meshc.runtime import cluster
from meshc.runtime.scripts import ScriptsNotLoaded
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Errors a worker retries with backoff: the server is away, restarting (refusing our
# user until the operator applies the users again: redis-py's AuthenticationError is a
# ConnectionError), still loading its data, failing over (seen from a cluster client),
# or without the scripts until the operator loads them again.
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    OSError,
    ScriptsNotLoaded,
    *cluster.TRANSIENT_ERRORS,
)


def is_busy(exc: ResponseError) -> bool:
    """The server is running a long script (``BUSY``): it answers again when that ends
    or is killed, so the worker waits instead of dying. redis-py rewrites an error
    inside a pipeline as ``Command # N (…) of pipeline caused error: ('BUSY …',)``."""
    message = str(exc)
    _, pipelined, own = message.partition(" of pipeline caused error: ")
    return (own.lstrip("('\"") if pipelined else message).startswith("BUSY")


def waitable(exc: BaseException) -> bool:
    """An error to wait out: the server is away, restarting, failing over or busy."""
    return isinstance(exc, TRANSIENT) or (isinstance(exc, ResponseError) and is_busy(exc))


class Backoff:
    """Pauses between attempts against a server that is away: 50 ms doubling to 2 s,
    back to 50 ms after a success (``reset``).

    An outage is logged twice, not once per attempt: a warning when a second attempt
    fails too, and a line when it ends (``reset`` after that warning). The attempts
    between are DEBUG, and so is a single failure that the next attempt gets past (a
    pooled connection the server closed), so a server down for an hour does not fill
    the log and a restart of a second logs one warning per waiting loop.
    """

    WARN_AT = 2  # the attempt whose failure is worth a warning

    def __init__(self, log: logging.Logger, first: float = 0.05, cap: float = 2.0) -> None:
        self.log = log
        self.first = first
        self.cap = cap
        self.delay = first
        self.since = 0.0  # monotonic time of this outage's first failure
        self.attempts = 0  # failures since the last success

    def reset(self) -> None:
        if self.attempts >= self.WARN_AT:
            self.log.info(
                "the server answers again after %.1f s (%d attempts failed)",
                time.monotonic() - self.since, self.attempts,
            )  # fmt: skip
        self.delay = self.first
        self.attempts = 0

    async def pause(self, what: str, exc: BaseException) -> None:
        self.attempts += 1
        if self.attempts == 1:
            self.since = time.monotonic()
        if self.attempts == self.WARN_AT:
            self.log.warning("%s (%s); retrying with backoff up to %g s, quietly until it "
                             "answers", what, exc, self.cap)  # fmt: skip
        else:
            self.log.debug("%s (%s); retrying in %.2f s", what, exc, self.delay)
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


def make_client(redis_url: str) -> Redis:
    """An asyncio client for ``redis://``, ``rediss://`` or ``unix://`` URLs (bytes replies);
    for ``redis+cluster://`` URLs a cluster client (typed as ``Redis``: it answers every
    command the worker sends with the same signature), with the same packer."""
    if cluster.is_cluster_url(redis_url):
        nodes = cluster.async_client(redis_url)
        kwargs = nodes.nodes_manager.connection_kwargs
        kwargs["connection_class"] = _with_hiredis_packer(kwargs["connection_class"])
        return cast(Redis, nodes)
    client = Redis.from_url(redis_url, decode_responses=False)
    pool = client.connection_pool
    pool.connection_class = _with_hiredis_packer(pool.connection_class)
    return client


def _with_hiredis_packer(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """A subclass of ``cls`` (made once per class) whose commands hiredis packs."""
    packed = _PACKED.get(cls)
    if packed is None:
        packed = _PACKED[cls] = type(f"Packed{cls.__name__}", (cls,), {"pack_command": _pack})
    return packed


def _pack(self: AbstractConnection, *args: Any) -> list[bytes]:
    """redis-py's own hiredis serializer, minus its per-call conversions we never need."""
    first = args[0]
    if isinstance(first, str):
        args = (*first.encode().split(), *args[1:])
    elif b" " in first:
        args = (*first.split(), *args[1:])
    return [_hiredis_pack(args)]


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}
