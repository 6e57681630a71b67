"""Key names on the server (docs/design.md section 5, "Keys").

With one partition a stream's key is its name. With P > 1 partitions the key of
stream S in partition p is ``S{<mesh>:<p>}``, so every key of one partition shares
one cluster slot and every script stays legal on a cluster.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshc.runtime.spec import MeshSpec


def tag(mesh: str, partition: int, partitions: int) -> str:
    """The hash tag of a partition, or '' for a single-partition mesh."""
    return f"{{{mesh}:{partition}}}" if partitions > 1 else ""


def stream_key(stream: str, mesh: str, partition: int = 0, partitions: int = 1) -> str:
    return stream + tag(mesh, partition, partitions)


def stream_keys(mesh: MeshSpec, stream: str) -> list[str]:
    """Every server key of a logical stream: one per partition."""
    return [stream_key(stream, mesh.name, p, mesh.partitions) for p in range(mesh.partitions)]


def private_key(mesh: str, agent: str, what: str, partition: int = 0, partitions: int = 1) -> str:
    """A key private to one agent: ``<mesh>:<agent>:<what>`` plus the partition tag."""
    return f"{mesh}:{agent}:{what}" + tag(mesh, partition, partitions)


def late_counter(mesh: str, agent: str, partition: int = 0, partitions: int = 1) -> str:
    """The counter of partials an aggregator received after their join was done."""
    return private_key(mesh, agent, "late", partition, partitions)


def retention_record(mesh: str, stream: str, partition: int = 0, partitions: int = 1) -> str:
    """The hash where trimming counts what it removed from one stream key and notes what
    held it back. ``@`` cannot start an agent name, so no agent's private keys
    (``<mesh>:<agent>:…``) collide with it; the tag keeps it in its stream key's slot."""
    return f"{mesh}:@retention:{stream}" + tag(mesh, partition, partitions)


def dlq_stream(mesh: str, agent: str) -> str:
    """The dead-letter stream of an agent (before any partition tag)."""
    return f"{mesh}.dlq.{agent}"


def partition_of(value: str, partitions: int) -> int:
    """``crc32(utf-8 of value) mod P``: the partition a task routes to."""
    if partitions <= 1:
        return 0
    return zlib.crc32(value.encode("utf-8")) % partitions
