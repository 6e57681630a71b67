"""One task's path through a running mesh, read from the streams themselves.

Every entry a mesh writes carries the wire header: ``trace`` (the task), ``parent``
(the entry it was made from), ``agent`` (its writer), ``attempt`` and, from workers
that record it, ``took`` (the handler's milliseconds). So the streams alone say where
a task went: no tracing service, no log search. :func:`read_trace` finds the task's
entries in every stream of the mesh and in the dead-letter streams, links each output
to the input it came from (an aggregator's output to all the partials it joined),
and asks the consumer groups about entries nobody has finished yet (XPENDING).

Reading is bounded, because production streams are long: the root entry is found
first (by id when the trace is an entry id, else newest first in the intake streams),
then every key of the task's partition is scanned with XRANGE in pages over a window
that starts at the root, and the whole read stops at ``limit`` entries. The result
says how much was scanned, and whether the limit cut it short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis
from meshc.ops.client import RawEntry, decode_entry, read_range
from meshc.ops.trace_model import Hop, OpenEnd, Scan, TaskTrace, TraceEntry, build_hops
from meshc.runtime import keys
from meshc.runtime.connect import MeshOpsError
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.wire import AGENT, ATTEMPT, DATA, PARENT, TRACE, id_order

__all__ = [
    "Hop",
    "OpenEnd",
    "Scan",
    "TaskTrace",
    "TraceEntry",
    "TraceNotFound",
    "read_trace",
    "server_ms",
]

ENTRY_ID = re.compile(r"^\d+-\d+$")
PAGE = 1000
WINDOW_MS = 3_600_000
LIMIT = 1_000_000
TOOK = b"took"
_HEADER = {DATA, TRACE, PARENT, AGENT, ATTEMPT, TOOK}


class TraceNotFound(MeshOpsError):
    """Raised when no entry of the mesh carries the trace within what was scanned."""


@dataclass
class _Scanner:
    """XRANGE/XREVRANGE in pages, counting what it reads and stopping at ``limit``."""

    r: redis.Redis
    trace: str
    page: int
    limit: int
    entries: int = 0
    keys: int = 0
    truncated: bool = False

    def _budget(self) -> int:
        count = min(self.page, self.limit - self.entries)
        if count <= 0:
            self.truncated = True
        return count

    def matching(self, key: str, start: str, end: str) -> list[RawEntry]:
        """The entries of ``key`` in [start, end] that belong to the trace, oldest first."""
        self.keys += 1
        found: list[RawEntry] = []
        cursor = start
        while (count := self._budget()) > 0:
            batch = read_range(self.r, key, cursor, end, count)
            self.entries += len(batch)
            found += [(eid, f) for eid, f in batch if _trace_of(eid, f) == self.trace]
            if len(batch) < count:
                break
            cursor = "(" + batch[-1][0].decode()
        return found

    def newest_root(self, key: str, since: str) -> RawEntry | None:
        """The newest root entry of the trace in ``key`` at or after ``since``."""
        self.keys += 1
        cursor = "+"
        while (count := self._budget()) > 0:
            batch = cast(list[RawEntry], self.r.xrevrange(key, cursor, since, count))
            self.entries += len(batch)
            for eid, fields in batch:
                if _trace_of(eid, fields) == self.trace and not fields.get(PARENT):
                    return eid, fields
            if len(batch) < count:
                return None
            cursor = "(" + batch[-1][0].decode()
        return None


def read_trace(
    r: redis.Redis,
    mesh: MeshSpec,
    trace: str,
    *,
    since: str | None = None,
    window_ms: int = WINDOW_MS,
    limit: int = LIMIT,
    page: int = PAGE,
) -> TaskTrace:
    """Everything the mesh wrote for ``trace``, linked into hops, with its open ends.

    ``since`` (an entry id) bounds the search for the root entry and starts the window
    when the root is not found (trimmed away); ``window_ms`` is how long after its
    start the task is followed. Raises :class:`TraceNotFound` when nothing matches.
    """
    if not trace or limit < 1 or page < 1 or window_ms < 0:
        raise ValueError("read_trace needs a trace, limit >= 1, page >= 1 and window_ms >= 0")
    scanner = _Scanner(r, trace, page, limit)
    root, partition = _find_root(scanner, mesh, since)
    start = root[0].decode() if root else since or (trace if ENTRY_ID.match(trace) else None)
    if start is None:
        raise TraceNotFound(_not_found(mesh, trace, scanner, None, None))
    end = f"{id_order(start)[0] + window_ms}"
    parts = [partition] if partition is not None else list(range(mesh.partitions))
    entries = _collect(scanner, mesh, parts, start, end)
    if not entries:
        raise TraceNotFound(_not_found(mesh, trace, scanner, start, end))
    hops = build_hops(mesh, entries)
    scan = Scan(scanner.keys, scanner.entries, start, end, window_ms, scanner.truncated, parts)
    first = root[0].decode() if root else None
    root_entry = next((e for e in entries if e.id == first and not e.parent), None)
    open_ends = _open_ends(r, mesh, entries, hops)
    terminal = frozenset(n for n, s in mesh.streams.items() if s.terminal)
    return TaskTrace(mesh.name, mesh.version, trace, root_entry, entries, hops, open_ends,
                     scan, terminal)  # fmt: skip


def server_ms(r: redis.Redis) -> int:
    """The server's clock in ms: entry ids come from it, not from this machine's."""
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _trace_of(entry_id: bytes, fields: dict[bytes, bytes]) -> str:
    value = fields.get(TRACE) or entry_id
    return value.decode("utf-8", "replace")


def _partitions(mesh: MeshSpec, trace: str) -> list[int]:
    """Every partition, the one ``meshc submit`` routes the trace to first (when the
    mesh routes by trace rather than by a payload field)."""
    every = list(range(mesh.partitions))
    if mesh.partitions > 1 and mesh.partition_key is None:
        first = keys.partition_of(trace, mesh.partitions)
        return [first, *(p for p in every if p != first)]
    return every


def _find_root(
    scanner: _Scanner, mesh: MeshSpec, since: str | None
) -> tuple[RawEntry | None, int | None]:
    """The task's root entry in an intake stream and its partition, if it is found."""
    trace = scanner.trace
    for p in _partitions(mesh, trace):
        for stream in mesh.intake_streams():
            key = keys.stream_key(stream, mesh.name, p, mesh.partitions)
            if ENTRY_ID.match(trace):
                scanner.keys += 1
                exact = read_range(scanner.r, key, trace, trace)
                scanner.entries += len(exact)
                hit = exact[0] if exact and _trace_of(*exact[0]) == trace else None
            else:
                hit = scanner.newest_root(key, since or "-")
            if hit is not None:
                return hit, p
    return None, None


def _collect(
    scanner: _Scanner, mesh: MeshSpec, parts: list[int], start: str, end: str
) -> tuple[TraceEntry, ...]:
    streams = [(name, False) for name in mesh.streams]
    streams += [(keys.dlq_stream(mesh.name, a.name), True) for a in _readers(mesh.agents.values())]
    found: list[TraceEntry] = []
    for name, dead in streams:
        for p in parts:
            key = keys.stream_key(name, mesh.name, p, mesh.partitions)
            for eid, fields in scanner.matching(key, start, end):
                found.append(_entry(name, key, eid, fields, dead))
    found.sort(key=lambda e: (id_order(e.id), e.stream))
    return tuple(found)


def _readers(agents: Iterable[AgentSpec]) -> list[AgentSpec]:
    return [a for a in agents if a.reads]


def _entry(stream: str, key: str, eid: bytes, fields: dict[bytes, bytes], dead: bool) -> TraceEntry:
    """Decode one entry; a header field that does not parse (a foreign writer's) is
    shown as missing rather than stopping the trace."""
    head = decode_entry(eid, {k: v for k, v in fields.items() if k != ATTEMPT})
    extra = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in fields.items()
        if k not in _HEADER
    }
    attempt = _number(fields.get(ATTEMPT))
    return TraceEntry(
        stream=stream, key=key, id=head["id"], agent=head["agent"], parent=head["parent"],
        attempt=int(attempt) if attempt is not None else 1, took_ms=_number(fields.get(TOOK)),
        data=head["data"], extra=extra, dead=dead,
    )  # fmt: skip


def _number(raw: bytes | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _open_ends(
    r: redis.Redis, mesh: MeshSpec, entries: tuple[TraceEntry, ...], hops: tuple[Hop, ...]
) -> tuple[OpenEnd, ...]:
    """Entries some reading agent has not turned into an output or a dead letter yet."""
    done = {(h.agent, e.stream, e.id) for h in hops for e in h.inputs}
    joined = {h.agent for h in hops if h.join}
    groups: dict[str, dict[str, str]] = {}
    out: list[OpenEnd] = []
    for e in entries:
        if e.dead:
            continue
        for agent in _readers(mesh.agents.values()):
            if e.stream in agent.reads and (agent.name, e.stream, e.id) not in done:
                out.append(_state(r, mesh, agent, e, entries, groups, agent.name in joined))
    return tuple(out)


def _state(
    r: redis.Redis,
    mesh: MeshSpec,
    agent: AgentSpec,
    e: TraceEntry,
    entries: tuple[TraceEntry, ...],
    groups: dict[str, dict[str, str]],
    joined: bool,
) -> OpenEnd:
    """Where an unfinished entry is: held by a consumer, not yet delivered, or taken."""
    try:
        held = r.xpending_range(e.key, agent.name, e.id, e.id, 1)
    except redis.ResponseError:  # NOGROUP: the agent never started
        held = []
    if held:
        h = held[0]
        idle, times = int(h["time_since_delivered"]), int(h["times_delivered"])
        return OpenEnd(agent.name, e, "pending", _text(h["consumer"]), idle, times)
    if e.key not in groups:
        groups[e.key] = _last_delivered(r, e.key)
    last = groups[e.key].get(agent.name)
    if last is None or id_order(e.id) > id_order(last):
        return OpenEnd(agent.name, e, "waiting")
    if agent.join is not None:
        if joined:
            return OpenEnd(agent.name, e, "late")
        return OpenEnd(agent.name, e, "joining", missing=_missing_lanes(agent, entries))
    return OpenEnd(agent.name, e, "consumed")


def _last_delivered(r: redis.Redis, key: str) -> dict[str, str]:
    try:
        infos = r.xinfo_groups(key)
    except redis.ResponseError:
        return {}
    return {_text(g["name"]): _text(g["last-delivered-id"]) for g in infos}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _missing_lanes(agent: AgentSpec, entries: tuple[TraceEntry, ...]) -> tuple[str, ...]:
    assert agent.join is not None
    seen = {e.stream for e in entries if e.stream in agent.reads and not e.dead}
    return tuple(agent.join.lanes[s] for s in agent.reads if s not in seen)


def _not_found(
    mesh: MeshSpec, trace: str, scanner: _Scanner, start: str | None, end: str | None
) -> str:
    where = f" between {start} and {end}" if start else ""
    if scanner.truncated:
        hint = "the scan stopped at --max-entries: raise it, or give --since closer to the task"
    elif start is None:
        hint = "check the trace (meshc submit prints it), or give --since if its intake was trimmed"
    else:
        hint = "check the trace (meshc submit prints it) and --since"
    entries = f"{scanner.entries} {'entry' if scanner.entries == 1 else 'entries'}"
    keys_ = f"{scanner.keys} {'key' if scanner.keys == 1 else 'keys'}"
    return (
        f"no entry of mesh {mesh.name!r} carries trace {trace!r}{where} (scanned "
        f"{entries} in {keys_}); {hint}"
    )
