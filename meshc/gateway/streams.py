"""Reading stream keys from the event loop: what the gateway's three readers share.

On a cluster, one XREAD may only name keys of one slot, and every key of one
partition shares a slot (their hash tag), so keys are read in partition groups; on a
single server all keys go into one XREAD.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis.asyncio
from meshc.ops.client import RawEntry
from meshc.runtime import cluster, keys
from meshc.runtime.spec import MeshSpec

# One blocking read waits at most this long: under redis-py's socket read timeout,
# and short enough that a stopped reader notices soon.
BLOCK_MS = 1_000
COUNT = 500


def pairs(reply: Any) -> Iterator[tuple[str, list[RawEntry]]]:
    """An XREAD(GROUP) reply as (key, entries); RESP2 gives a list, RESP3 a dict."""
    items = reply.items() if isinstance(reply, dict) else (reply or [])
    for key, entries in items:
        name = key.decode() if isinstance(key, bytes) else str(key)
        yield name, (entries[0] if isinstance(reply, dict) else entries)


def key_groups(mesh: MeshSpec, streams: Iterable[str], clustered: bool) -> list[dict[str, str]]:
    """``{key: stream}`` groups that one XREAD may name together."""
    names = list(streams)
    by_partition = [
        {keys.stream_key(s, mesh.name, p, mesh.partitions): s for s in names}
        for p in range(mesh.partitions)
    ]
    if clustered:
        return by_partition
    return [{k: s for group in by_partition for k, s in group.items()}]


def partition_of_key(mesh: MeshSpec, stream: str, key: str) -> int:
    """The partition a stream's server key belongs to (0 when it is not one of them)."""
    for p in range(mesh.partitions):
        if keys.stream_key(stream, mesh.name, p, mesh.partitions) == key:
            return p
    return 0


def is_cluster(r: redis.asyncio.Redis) -> bool:
    return cluster.is_cluster(r)


async def last_ids(r: redis.asyncio.Redis, group: dict[str, str]) -> dict[str, str]:
    """Where each key ends now: a cursor that reads only what comes after.

    Not ``$``: between two reads ``$`` would skip what arrived in the gap.
    """
    pipe = r.pipeline(transaction=False)
    for key in group:
        pipe.xrevrange(key, count=1)
    replies = cast(list[list[RawEntry]], await pipe.execute())
    ends = zip(group, replies, strict=True)
    return {key: (rep[0][0].decode() if rep else "0-0") for key, rep in ends}
