"""The core mesh: what checks, renderers and the code generator read.

Plain immutable records (named tuples: a big mesh has hundreds of thousands of them,
and a tuple is made several times faster than a frozen dataclass). Every record
remembers the YAML path it came from, so a diagnostic about an expanded lane still
points at the line that made it. ``meshc.expand`` builds them from the typed model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from meshc.model import Join, ModelSettings, Retention
from meshc.source import Path


class Ref(NamedTuple):
    """One entry of an agent's `reads` or `writes`, and where it was written: item
    ``item`` of the list at ``at``, or ``at`` itself when ``item`` is -1 (the
    streams of a lane family). The list's path is shared by all its entries."""

    name: str
    at: Path
    item: int = -1

    @property
    def path(self) -> Path:
        return self.at if self.item < 0 else (*self.at, self.item)


class CoreStream(NamedTuple):
    """A declared stream, or one a lane family makes (``at``: its template's path)."""

    name: str
    type: str
    at: Path | None = None
    description: str = ""
    terminal: bool = False
    retention: Retention | None = None
    max_backlog: int | None = None
    family: str | None = None
    lane: str | None = None

    @property
    def path(self) -> Path:
        return ("streams", self.name) if self.at is None else self.at


class CoreAgent(NamedTuple):
    """An agent with its references resolved to streams and its policy filled in.

    ``policy`` may be one dict shared by many agents (those that set none of their
    own); like the record, it is never changed. ``at`` is the path of the lane
    family's agent template an agent was made from, None for a declared agent.
    """

    name: str
    role: str
    reads: tuple[Ref, ...]
    writes: tuple[Ref, ...]
    at: Path | None
    policy: dict[str, Any]
    handler: str | None = None
    description: str = ""
    deterministic: bool = True
    join: Join | None = None
    model: ModelSettings | None = None
    prompt: str | None = None
    family: str | None = None
    lane: str | None = None

    @property
    def path(self) -> Path:
        return ("agents", self.name) if self.at is None else self.at

    @property
    def read_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.reads)

    @property
    def write_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.writes)


@dataclass(frozen=True)
class CoreMesh:
    name: str
    version: int
    description: str
    types: dict[str, dict[str, str]]
    streams: dict[str, CoreStream]
    agents: dict[str, CoreAgent]
    partitions: int = 1
    partition_key: str | None = None
    families: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()

    def lane_of(self, stream: str) -> str:
        """The lane name of a stream inside a join: its family lane, else its last word."""
        s = self.streams.get(stream)
        if s is not None and s.lane is not None:
            return s.lane
        return stream.rsplit(".", 1)[-1]
