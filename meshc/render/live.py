"""What the server says about a mesh right now, for ``meshc render --live``.

A deliberately small reader (XLEN, XINFO GROUPS, XLEN of each dead-letter stream),
summed over partitions. It only reads, so it is safe against a production server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import redis
from meshc.core import CoreMesh
from meshc.runtime import cluster, keys
from meshc.runtime.errors import MeshRuntimeError
from redis.exceptions import RedisClusterException


class LiveError(Exception):
    """Raised when the server cannot be reached or answers something unexpected."""


@dataclass(frozen=True)
class GroupStats:
    """One consumer group: entries not yet delivered (lag) and delivered but unacked."""

    lag: int | None
    pending: int


@dataclass(frozen=True)
class LiveStats:
    lengths: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[str, str], GroupStats] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)

    def stream_note(self, stream: str) -> str:
        return f"len {self.lengths.get(stream, 0)}"

    def read_note(self, stream: str, agent: str) -> str:
        group = self.groups.get((stream, agent))
        if group is None:
            return "no group yet"
        lag = "?" if group.lag is None else str(group.lag)
        return f"lag {lag}, pending {group.pending}"

    def dead_count(self, agent: str) -> int:
        return self.dead.get(agent, 0)

    def dead_note(self, agent: str) -> str:
        n = self.dead_count(agent)
        return f"DLQ {n}" if n else ""


def read_live(client: redis.Redis, core: CoreMesh) -> LiveStats:
    """Read lengths, group lag/pending and dead letters of every stream and agent."""
    parts = range(max(core.partitions, 1))
    lengths: dict[str, int] = {}
    groups: dict[tuple[str, str], GroupStats] = {}
    try:
        for name in sorted(core.streams):
            stream_keys = [keys.stream_key(name, core.name, p, core.partitions) for p in parts]
            lengths[name] = sum(int(client.xlen(k)) for k in stream_keys)
            for key in stream_keys:
                _add_groups(groups, name, _groups_of(client, key))
        dead = {
            agent: sum(int(client.xlen(_dlq_key(core, agent, p))) for p in parts)
            for agent in sorted(core.agents)
        }
    except redis.RedisError as err:
        raise LiveError(f"cannot read the mesh's streams from the server: {err}") from err
    return LiveStats(lengths, groups, dead)


def connect(url: str) -> redis.Redis:
    """A client with short timeouts: a render should fail fast, not hang. A cluster URL
    (``redis+cluster://``) gives a cluster client, typed as the single-server one."""
    try:
        if cluster.is_cluster_url(url):
            nodes = cluster.sync_client(url, socket_connect_timeout=5, socket_timeout=10)
            client = cast(redis.Redis, nodes)
        else:
            client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
    except (redis.RedisError, RedisClusterException, ValueError, MeshRuntimeError) as err:
        raise LiveError(f"cannot reach the server at {_redact(url)}: {err}") from err
    return client


def _dlq_key(core: CoreMesh, agent: str, partition: int) -> str:
    return keys.dlq_stream(core.name, agent) + keys.tag(core.name, partition, core.partitions)


def _groups_of(client: redis.Redis, key: str) -> list[dict[Any, Any]]:
    if not client.exists(key):
        return []
    return list(client.xinfo_groups(key))


def _add_groups(
    groups: dict[tuple[str, str], GroupStats], stream: str, infos: list[dict[Any, Any]]
) -> None:
    for info in infos:
        name = _text(info.get("name", b""))
        lag = info.get("lag")
        old = groups.get((stream, name))
        pending = int(info.get("pending", 0))
        total_lag = None if lag is None else int(lag)
        if old is not None:
            pending += old.pending
            total_lag = None if old.lag is None or total_lag is None else old.lag + total_lag
        groups[(stream, name)] = GroupStats(total_lag, pending)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _redact(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"
