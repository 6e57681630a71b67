"""The runtime's view of a mesh: plain frozen records that generated code builds.

The compiler's model (``meshc.model``) is richer and knows about YAML positions; the
runtime only needs names, types and policy, so generated ``topology.py`` modules
construct these records and nothing in ``meshc.runtime`` imports the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Policy:
    """Delivery policy of one agent (durations in seconds)."""

    replicas: int = 1
    concurrency: int = 1
    batch: int = 100
    timeout: float | None = 300.0  # None: no deadline (only hand-built specs do that)
    max_deliveries: int = 5
    visibility_timeout: float = 30.0
    max_payload_bytes: int = 1_048_576


@dataclass(frozen=True)
class StreamSpec:
    """One stream: its name, payload model and retention.

    ``form`` is the canonical JSON of its type (nested types written out, no type
    names) and ``fingerprint`` a short hash of it: what outputs carry in their
    ``schema`` header and what the server's record of a running mesh holds.
    """

    name: str
    model: type[BaseModel]
    maxlen: int | None = None
    max_age: float | None = None
    terminal: bool = False
    max_backlog: int | None = None
    fingerprint: str = ""
    form: str = ""


@dataclass(frozen=True)
class JoinSpec:
    """How an aggregator joins partial results.

    ``lanes`` maps each input stream to the lane name used in the merged result
    (``doc.suggestions.grammar`` -> ``grammar``).
    """

    on: tuple[str, ...]
    timeout: float
    lanes: dict[str, str]


@dataclass(frozen=True)
class AgentSpec:
    """One agent: what it reads and writes, its handler reference and policy."""

    name: str
    role: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    handler: str
    policy: Policy = field(default_factory=Policy)
    deterministic: bool = True
    join: JoinSpec | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MeshSpec:
    """A whole mesh as the runtime sees it; ``fingerprint`` hashes all of it."""

    name: str
    version: int
    streams: dict[str, StreamSpec]
    agents: dict[str, AgentSpec]
    partitions: int = 1
    partition_key: str | None = None
    fingerprint: str = ""

    def intake_streams(self) -> tuple[str, ...]:
        """Streams written by producers (where tasks enter)."""
        return tuple(s for a in self.agents.values() if a.role == "producer" for s in a.writes)

    def readers(self, stream: str) -> list[str]:
        """The agents that read ``stream`` (one consumer group each), by name."""
        return sorted(a.name for a in self.agents.values() if stream in a.reads)

    def terminal_streams(self) -> tuple[str, ...]:
        return tuple(name for name, s in self.streams.items() if s.terminal)
