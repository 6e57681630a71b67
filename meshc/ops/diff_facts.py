"""What the server holds for the mesh that runs now (the old version), read once for
the conditions of a diff's findings: per stream, its length and per group what is
not finished; per aggregator, its open joins.

Keys follow the old mesh's name and partitions (that is what the server holds).
Everything here reads; nothing writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import redis
from meshc.core import CoreMesh
from meshc.diff.findings import Condition, Report
from meshc.diff.query import readers
from meshc.ops.client import group_lag
from meshc.runtime import keys


@dataclass
class StreamFacts:
    """One stream over all partitions: entries, and per group lag + pending. A reader
    of the old mesh with no group yet counts every entry as unfinished."""

    length: int = 0
    groups: dict[str, int] = field(default_factory=dict)

    @property
    def unprocessed(self) -> int:
        return max(self.groups.values(), default=0)

    def describe(self, name: str) -> str:
        if not self.length:
            return f"`{name}` is empty"
        busy = ", ".join(f"{g} {n}" for g, n in sorted(self.groups.items()) if n)
        entries = "1 entry" if self.length == 1 else f"{self.length} entries"
        return f"`{name}` holds {entries}" + (f", unfinished: {busy}" if busy else ", all finished")


class Facts:
    """Reads, and remembers, what the conditions ask about."""

    def __init__(self, r: redis.Redis, mesh: CoreMesh) -> None:
        self.r, self.mesh = r, mesh
        self._streams: dict[str, StreamFacts] = {}

    def stream(self, name: str) -> StreamFacts:
        if name not in self._streams:
            self._streams[name] = self._read(name)
        return self._streams[name]

    def _read(self, name: str) -> StreamFacts:
        out = StreamFacts()
        declared = readers(self.mesh, name)
        for p in range(self.mesh.partitions):
            key = keys.stream_key(name, self.mesh.name, p, self.mesh.partitions)
            length = int(self.r.xlen(key))
            out.length += length
            infos = _groups(self.r, key)
            for group in sorted(set(declared) | set(infos)):
                info = infos.get(group)
                busy = length if info is None else _unfinished(self.r, key, info)
                out.groups[group] = out.groups.get(group, 0) + busy
        return out

    def open_joins(self, agent: str) -> int:
        total = 0
        for p in range(self.mesh.partitions):
            key = keys.private_key(self.mesh.name, agent, "join-deadlines", p, self.mesh.partitions)
            total += int(self.r.zcard(key))
        return total

    def check(self, condition: Condition) -> tuple[bool, list[str]]:
        """Does ``condition`` hold, and what was seen."""
        if condition.kind == "joins":
            counts = {a: self.open_joins(a) for a in condition.agents}
            seen = [f"`{a}` has {n} open join{'s' if n != 1 else ''}" for a, n in counts.items()]
            return any(counts.values()), seen
        facts = {s: self.stream(s) for s in condition.streams}
        if condition.kind == "group":
            counts = {s: f.groups.get(condition.group, 0) for s, f in facts.items()}
            seen = [
                f"group `{condition.group}` on `{s}`: {n} unfinished" for s, n in counts.items()
            ]
            return any(counts.values()), seen
        test = _entries if condition.kind == "entries" else _unprocessed_of
        return any(test(f) for f in facts.values()), [f.describe(s) for s, f in facts.items()]


def _entries(f: StreamFacts) -> bool:
    return f.length > 0


def _unprocessed_of(f: StreamFacts) -> bool:
    return f.unprocessed > 0


def _groups(r: redis.Redis, key: str) -> dict[str, dict[str, Any]]:
    try:
        return {g["name"].decode(): g for g in r.xinfo_groups(key)}
    except redis.ResponseError:  # no such key
        return {}


def _unfinished(r: redis.Redis, key: str, info: dict[str, Any]) -> int:
    return group_lag(r, key, info) + int(info["pending"])


def settle(report: Report, facts: Facts) -> Report:
    """Read every condition of every finding: each becomes ``breaks`` if one holds and
    its ``clear`` level otherwise, with what was seen as evidence."""
    settled = []
    for f in report.findings:
        if not f.conditions:
            settled.append(f)
            continue
        held, seen = False, list[str]()
        for c in f.conditions:
            hit, what = facts.check(c)
            held, seen = held or hit, seen + what
        settled.append(f.settled(held, seen))
    return replace(report, findings=settled)
