"""The records of a task's path, and how entries are linked into hops.

A *hop* is one agent turning input into output: the entry it read (for an aggregator,
every partial it joined), the entries its commit wrote, or the dead letter it wrote
instead. Entries are linked by their ``parent`` header, within the agent's declared
input streams only: entry ids repeat across streams (one commit writes every lane in
the same millisecond), so an id alone does not name an entry.

Times are entry-id times (the server's clock, in ms). With the ``took`` header the
hop's time splits into waiting (input written → handler start) and handler time;
without it only the total is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.wire import id_order

TIMED_OUT = "join timed out"


@dataclass(frozen=True)
class TraceEntry:
    """One stream entry of the task; ``extra`` holds fields beyond the wire header
    (a dead letter's ``error``, ``source_stream``, ``source_id``, ``deliveries`` …)."""

    stream: str
    key: str
    id: str
    agent: str
    parent: str
    attempt: int
    took_ms: float | None
    data: Any
    extra: dict[str, str] = field(default_factory=dict)
    dead: bool = False

    @property
    def ms(self) -> int:
        return id_order(self.id)[0]

    @property
    def written(self) -> str:
        """When the server wrote it, as UTC ISO 8601 with milliseconds."""
        at = datetime.fromtimestamp(self.ms / 1000, tz=UTC)
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def traceparent(self) -> str | None:
        """The W3C trace context of the span that wrote it (only while tracing)."""
        return self.extra.get("traceparent")

    def span(self, part: int) -> str | None:
        """Part of ``traceparent``: 1 the OpenTelemetry trace id, 2 the span id."""
        fields = (self.traceparent or "").split("-")
        return fields[part] if len(fields) == 4 else None

    def as_dict(self) -> dict[str, Any]:
        out = {"stream": self.stream, "key": self.key, "id": self.id, "written": self.written,
               "agent": self.agent, "parent": self.parent, "attempt": self.attempt,
               "took_ms": self.took_ms, "data": self.data}  # fmt: skip
        if self.traceparent is not None:
            out["traceparent"] = self.traceparent
        if self.dead:
            out["dead_letter"] = self.extra
        return out


@dataclass(frozen=True)
class Hop:
    """One agent's step: ``trigger`` is the input whose commit wrote ``outputs`` (for a
    join, the last partial; None when it was not found), ``inputs`` every input read."""

    agent: str
    trigger: TraceEntry | None
    inputs: tuple[TraceEntry, ...]
    outputs: tuple[TraceEntry, ...]
    join: bool = False
    lanes: tuple[str, ...] = ()  # a join: the lanes of its inputs, in input order

    @property
    def dead(self) -> bool:
        return self.outputs[0].dead

    @property
    def attempt(self) -> int:
        first = self.outputs[0]
        if first.dead:
            return int(first.extra.get("deliveries") or 0) or first.attempt
        return first.attempt

    @property
    def took_ms(self) -> float | None:
        return self.outputs[0].took_ms

    @property
    def ready(self) -> TraceEntry | None:
        """The input from which the hop's time counts: its input, or for a join the
        newest partial (the join could not finish before it was written). The
        runtime's ``parent`` of a join result is the partial stored last in its
        batch, which need not be the newest."""
        if self.join and self.inputs:
            return max(self.inputs, key=lambda e: id_order(e.id))
        return self.trigger

    @property
    def total_ms(self) -> int | None:
        """Input written → output written; None when the input was not found."""
        ready = self.ready
        return None if ready is None else self.outputs[0].ms - ready.ms

    @property
    def wait_ms(self) -> float | None:
        """Input written → handler start, when the worker recorded ``took``."""
        if self.total_ms is None or self.took_ms is None:
            return None
        return max(0.0, self.total_ms - self.took_ms)

    @property
    def missing(self) -> list[str]:
        """Lanes an aggregator's result names as missing (its join timed out)."""
        data = self.outputs[0].data
        found = data.get("missing") if self.join and isinstance(data, dict) else None
        return [str(m) for m in found] if isinstance(found, list) else []

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "attempt": self.attempt,
            "join": self.join,
            "input": self.trigger.id if self.trigger else None,
            "input_stream": self.trigger.stream if self.trigger else None,
            "inputs": [{"stream": e.stream, "id": e.id} for e in self.inputs],
            "lanes": list(self.lanes),
            "outputs": [{"stream": e.stream, "id": e.id} for e in self.outputs],
            "dead_letter": self.dead,
            "total_ms": self.total_ms,
            "handler_ms": self.took_ms,
            "wait_ms": self.wait_ms,
            "missing": self.missing,
        }


@dataclass(frozen=True)
class OpenEnd:
    """An entry a reading agent has not finished: ``pending`` (held by ``consumer``
    for ``idle_ms``, delivered ``deliveries`` times), ``waiting`` (not yet delivered
    to the group), ``joining`` (stored in the join, ``missing`` lanes to come),
    ``late`` (a partial after its join was emitted) or ``consumed`` (acknowledged
    without an output: the handler returned nothing)."""

    agent: str
    entry: TraceEntry
    state: str
    consumer: str = ""
    idle_ms: int = 0
    deliveries: int = 0
    missing: tuple[str, ...] = ()

    @property
    def in_flight(self) -> bool:
        return self.state in ("pending", "waiting", "joining")

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "stream": self.entry.stream, "id": self.entry.id,
                "state": self.state, "consumer": self.consumer, "idle_ms": self.idle_ms,
                "deliveries": self.deliveries, "missing": list(self.missing)}  # fmt: skip


@dataclass(frozen=True)
class Scan:
    """What was read: keys and entries, the id window, and whether the limit cut it."""

    keys: int
    entries: int
    start: str
    end: str
    window_ms: int
    truncated: bool
    partitions: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"keys": self.keys, "entries": self.entries, "start": self.start, "end": self.end,
                "window_ms": self.window_ms, "truncated": self.truncated,
                "partitions": self.partitions}  # fmt: skip


@dataclass(frozen=True)
class TaskTrace:
    """A task's entries, hops and open ends; ``root`` is None when it was not found."""

    mesh: str
    version: int
    trace: str
    root: TraceEntry | None
    entries: tuple[TraceEntry, ...]
    hops: tuple[Hop, ...]
    open_ends: tuple[OpenEnd, ...]
    scan: Scan
    terminal: frozenset[str]

    @property
    def results(self) -> list[TraceEntry]:
        return [e for e in self.entries if e.stream in self.terminal]

    @property
    def dead_letters(self) -> list[TraceEntry]:
        return [e for e in self.entries if e.dead]

    @property
    def timed_out(self) -> list[Hop]:
        return [h for h in self.hops if h.missing]

    @property
    def in_flight(self) -> list[OpenEnd]:
        return [o for o in self.open_ends if o.in_flight]

    @property
    def agents(self) -> list[str]:
        """Agents in the order the task reached them (the root's writer first)."""
        names = [self.root.agent] if self.root and self.root.agent else []
        names += [h.agent for h in self.hops]
        return list(dict.fromkeys(names))

    @property
    def status(self) -> str:
        if self.in_flight:
            return "in flight"
        if self.results and self.dead_letters:
            return "completed, with dead letters"
        if self.results:
            return f"completed ({TIMED_OUT})" if self.timed_out else "completed"
        return "dead-lettered" if self.dead_letters else "ended without a result"

    @property
    def first_ms(self) -> int:
        return (self.root or self.entries[0]).ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "mesh": self.mesh,
            "version": self.version,
            "trace": self.trace,
            "status": self.status,
            "root": self.root.id if self.root else None,
            "agents": self.agents,
            "entries": [e.as_dict() for e in self.entries],
            "hops": [h.as_dict() for h in self.hops],
            "ends": {
                "results": [{"stream": e.stream, "id": e.id} for e in self.results],
                "dead_letters": [_dead(e) for e in self.dead_letters],
                "timed_out": [{"agent": h.agent, "missing": h.missing} for h in self.timed_out],
                "open": [o.as_dict() for o in self.open_ends],
            },
            "scan": self.scan.as_dict(),
        }


def _dead(e: TraceEntry) -> dict[str, Any]:
    return {"stream": e.stream, "id": e.id, "agent": e.agent, **e.extra}


def build_hops(mesh: MeshSpec, entries: tuple[TraceEntry, ...]) -> tuple[Hop, ...]:
    """Group outputs by (writer, parent) and find the input each group came from."""
    groups: dict[tuple[str, str, str], list[TraceEntry]] = {}
    for e in entries:
        if e.dead:  # a dead letter is a hop of its own, from its source entry
            groups[(e.agent, e.id, "dead")] = [e]
        elif e.parent:
            groups.setdefault((e.agent, e.parent, ""), []).append(e)
    hops = [_hop(mesh.agents.get(agent), agent, outs, entries) for (agent, _, _), outs in
            groups.items()]  # fmt: skip
    return tuple(sorted(hops, key=lambda h: (id_order(h.outputs[0].id), h.outputs[0].stream)))


def _hop(
    spec: AgentSpec | None, agent: str, outputs: list[TraceEntry], entries: tuple[TraceEntry, ...]
) -> Hop:
    first = outputs[0]
    source_stream = first.extra.get("source_stream", "") if first.dead else ""
    parent = first.extra.get("source_id", "") if first.dead else first.parent
    if spec is None:  # written by no agent of this mesh (an outside writer)
        return Hop(agent, None, (), tuple(outputs))
    if spec.join is not None and not source_stream:
        inputs = _partials(spec, first, entries)
        trigger = next((e for e in reversed(inputs) if e.id == parent), None)
        lanes = tuple(spec.join.lanes.get(e.stream, e.stream) for e in inputs)
        return Hop(agent, trigger, inputs, tuple(outputs), join=True, lanes=lanes)
    streams = (source_stream,) if source_stream else spec.reads
    trigger = next((e for e in entries if e.id == parent and e.stream in streams
                    and not e.dead), None)  # fmt: skip
    return Hop(agent, trigger, (trigger,) if trigger else (), tuple(outputs))


def _partials(
    spec: AgentSpec, output: TraceEntry, entries: tuple[TraceEntry, ...]
) -> tuple[TraceEntry, ...]:
    """The partials a join's output was made from: the task's entries on the
    aggregator's inputs written before it, with the output's key values if it has them."""
    assert spec.join is not None
    on = spec.join.on
    data = output.data if isinstance(output.data, dict) else {}
    key = {k: data[k] for k in on if k in data} if all(k in data for k in on) else {}
    return tuple(
        e for e in entries
        if e.stream in spec.reads and not e.dead and id_order(e.id) <= id_order(output.id)
        and all(isinstance(e.data, dict) and e.data.get(k) == v for k, v in key.items())
    )  # fmt: skip
