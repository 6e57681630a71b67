"""Follow one task live: its entries in every stream of the mesh, in hop order.

Every entry of a task carries its trace, so following the task is reading every
stream of its partition (dead-letter streams included) from the moment it entered
and keeping the entries with that trace. One XREAD BLOCK names all those keys (they
share the partition's hash tag, so one slot on a cluster).

Hop order: a child is written after its parent, so its id's millisecond is not
smaller; within one millisecond a downstream stream comes after an upstream one. So
entries are sorted by (millisecond, depth of the stream in the mesh, sequence), a
result after what shares its millisecond and depth (it ends the stream). When
a read of some key was cut at COUNT entries, that key may still hold an earlier hop:
entries from that millisecond on wait for the next read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from meshc.gateway import streams
from meshc.ops.client import decode_entry
from meshc.runtime import keys
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import id_order


@dataclass(frozen=True)
class Hop:
    """One entry of the task: where it was written, by whom, from which entry."""

    stream: str
    id: str
    agent: str
    parent: str
    attempt: int
    data: Any
    kind: str  # "hop", "result" (a terminal stream) or "dead_letter"
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "stream": self.stream,
            "id": self.id,
            "agent": self.agent,
            "parent": self.parent,
            "attempt": self.attempt,
        }
        if self.kind == "result":
            doc["data"] = self.data
        if self.kind == "dead_letter":
            doc["error"] = self.error
        return doc


def depths(mesh: MeshSpec) -> dict[str, int]:
    """Each stream's depth (intakes 0; an agent's outputs and dead letters one more
    than its deepest input)."""
    depth = {s: 0 for s in mesh.streams}
    for _ in mesh.streams:  # a DAG settles in at most one pass per stream
        for agent in mesh.agents.values():
            below = 1 + max((depth[s] for s in agent.reads), default=-1)
            for out in (*agent.writes, keys.dlq_stream(mesh.name, agent.name)):
                depth[out] = max(depth.get(out, 0), below)
    return depth


def task_keys(mesh: MeshSpec, partition: int) -> dict[str, str]:
    """``{key: stream}`` of every stream and dead-letter stream of one partition."""
    names = [*mesh.streams, *(keys.dlq_stream(mesh.name, a) for a in sorted(mesh.agents))]
    return {keys.stream_key(s, mesh.name, partition, mesh.partitions): s for s in names}


async def follow(
    r: redis.asyncio.Redis, mesh: MeshSpec, trace: str, partition: int, since_ms: int
) -> AsyncGenerator[Hop | None, None]:
    """The task's entries from ``since_ms`` on, in hop order, ending with its first
    result; runs until then (the caller bounds it). ``None`` after a read that gave
    nothing, so that the caller can keep its connection alive or give up."""
    group = task_keys(mesh, partition)
    rank = depths(mesh)
    terminal = set(mesh.terminal_streams())
    dead = {keys.dlq_stream(mesh.name, a) for a in mesh.agents}
    cursors = {key: f"{max(0, since_ms - 1)}-0" for key in group}
    held: list[tuple[tuple[int, int, bool, int], Hop]] = []
    full = False
    while True:
        reply = await r.xread(
            cursors,  # type: ignore[arg-type]
            count=streams.COUNT,
            block=None if full else streams.BLOCK_MS,
        )
        cut: list[int] = []
        for key, entries in streams.pairs(reply):
            stream = group[key]
            for eid, fields in entries:
                cursors[key] = eid.decode()
                entry = decode_entry(eid, fields)
                if entry["trace"] != trace:
                    continue
                kind = "result" if stream in terminal else "hop"
                kind = "dead_letter" if stream in dead else kind
                error = fields.get(b"error", b"").decode("utf-8", "replace")
                hop = Hop(
                    stream, entry["id"], entry["agent"], entry["parent"], entry["attempt"],
                    entry["data"], kind, error,
                )  # fmt: skip
                ms, seq = id_order(entry["id"])
                held.append(((ms, rank.get(stream, 0), kind == "result", seq), hop))
            if len(entries) == streams.COUNT:
                cut.append(id_order(cursors[key])[0])
        full = bool(cut)
        limit = min(cut) if cut else None
        held.sort(key=lambda item: item[0])
        ready = [h for order, h in held if limit is None or order[0] < limit]
        held = held[len(ready) :]
        if not ready:
            yield None
        for hop in ready:
            yield hop
            if hop.kind == "result":
                return
