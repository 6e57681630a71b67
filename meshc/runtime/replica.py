"""Who a worker is: its consumer name, the partitions it serves, its counters, and
what it records about itself for ``meshc status``."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from meshc.runtime.errors import ConfigError
from meshc.runtime.spec import MeshSpec
from meshc.runtime.transport import TRANSIENT
from redis.asyncio import Redis

EXIT_STUCK = 3  # exit code when handler threads are stuck past their deadline


def default_consumer() -> str:
    """A consumer name unique per process, readable in ``XINFO CONSUMERS``.

    Supervised workers get a stable name per replica instead (``launch``), so that a
    restarted worker finds what its predecessor held.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def served(mesh: MeshSpec, partitions: Sequence[int] | None) -> tuple[int, ...]:
    """The partitions a worker serves: those given, else all of the mesh's."""
    total = max(1, mesh.partitions)
    chosen = tuple(partitions) if partitions is not None else tuple(range(total))
    bad = [p for p in chosen if not 0 <= p < total]
    if bad or not chosen:
        raise ConfigError(f"partitions {list(chosen)} outside range({total}) of mesh {mesh.name!r}")
    return chosen


@dataclass
class Stats:
    """Counters of one worker, for logs and tests."""

    read: int = 0
    committed: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    late: int = 0
    joins_emitted: int = 0
    recovered: int = 0
    stuck_exits: int = 0


async def record_stuck(redis: Redis, key: str, note: str, log: logging.Logger) -> None:
    """Say where ``meshc status`` looks (the agent's health hash) that a worker exited
    because handler calls were stuck past their deadline."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(key, "stuck_exits", 1)
    pipe.hset(key, "last_stuck", f"{stamp} {note}; exited for a fresh process")
    try:
        await pipe.execute()
    except TRANSIENT as exc:
        log.warning("could not record the exit in %s: %s", key, exc)
