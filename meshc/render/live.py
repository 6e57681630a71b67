"""What the server says about a mesh right now, as the diagrams annotate it.

Plain data and the words each view prints; reading it from a server is
:mod:`meshc.ops.live`'s job, so every renderer stays a pure function.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GroupStats:
    """One consumer group over all partitions: entries not yet delivered to it (lag)
    and delivered but not acknowledged (pending)."""

    lag: int
    pending: int


@dataclass(frozen=True)
class LiveStats:
    """Stream lengths, the groups that exist (by stream and reading agent) and dead
    letters per agent. A reader with no entry in ``groups`` has no group yet."""

    lengths: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[str, str], GroupStats] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)

    def stream_note(self, stream: str) -> str:
        return f"len {self.lengths.get(stream, 0)}"

    def read_note(self, stream: str, agent: str) -> str:
        group = self.groups.get((stream, agent))
        if group is None:
            return "no group yet"
        return f"lag {group.lag}, pending {group.pending}"

    def dead_count(self, agent: str) -> int:
        return self.dead.get(agent, 0)

    def dead_note(self, agent: str) -> str:
        n = self.dead_count(agent)
        return f"DLQ {n}" if n else ""
