"""What operators see of a worker: Prometheus metrics and OpenTelemetry spans
(docs/observability.md).

The worker holds one :class:`Telemetry`, or None when metrics and traces are both off,
so a call pays exactly one ``is not None`` check for them when nobody looks. The hooks
here are the only place that knows metric names, labels and span attributes: the
worker and the join tell them what happened, in their own terms.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

from meshc.runtime.context import Call
from meshc.runtime.replica import Stats
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.telemetry import metrics, tracing
from meshc.runtime.wire import TRACE, TRACEPARENT, Delivery

LINKS = b".links"  # a join hash's field: the partials' traceparents, space-separated
_ENTRY_ID = re.compile(rb"^(\d{1,15})-\d+$")
_HEX32 = re.compile(rb"^[0-9a-f]{32}$")


def new_trace() -> str:
    """A fresh task id: 32 hex digits laid out as a UUIDv7, whose first 48 bits are the
    Unix time in ms, so where a task ends its start can be read from the trace alone
    (:func:`task_start`) and ids sort by time; the other 74 bits are random."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (1 << 62) - 1
    return f"{value:032x}"


def task_start(trace: bytes) -> float | None:
    """When a task started (Unix seconds), read from its trace: an outside producer's
    root entry id (``<ms>-<seq>``), or the time-ordered id ``meshc submit`` makes
    (UUIDv7: its first 48 bits are the Unix milliseconds). None for other traces."""
    m = _ENTRY_ID.match(trace)
    if m is not None:
        return int(m.group(1)) / 1000
    if _HEX32.match(trace) and trace[12:13] == b"7":
        return int(trace[:12], 16) / 1000
    return None


class Telemetry:
    """The hooks of one agent's worker; ``metrics`` and ``spans`` may each be None."""

    def __init__(
        self,
        mesh: MeshSpec,
        spec: AgentSpec,
        metrics_: metrics.WorkerMetrics | None,
        spans: tracing.Spans | None,
        stats: Stats | None = None,
    ) -> None:
        self.mesh = mesh.name
        self.stats = stats or Stats()
        self._duplicates = self.stats.duplicates  # counted into the metric so far
        self.agent = spec.name
        self.m = metrics_
        self.spans = spans
        self.terminal = frozenset(s for s in spec.writes if mesh.streams[s].terminal)
        self.lanes = len(spec.join.lanes) if spec.join is not None else 0

    @classmethod
    def from_env(cls, mesh: MeshSpec, spec: AgentSpec, stats: Stats) -> Telemetry | None:
        """On when the supervisor asked for metrics or ``OTEL_*`` asks for traces.
        ``stats`` are the worker's counters, of which duplicate commits are read."""
        m = metrics.WorkerMetrics(mesh.name, spec.name) if metrics.enabled() else None
        spans = tracing.active()
        on = m is not None or spans is not None
        return cls(mesh, spec, m, spans, stats) if on else None

    # -- calls ----------------------------------------------------------------------

    def call(
        self, d: Delivery, call: Call, outputs: Sequence[tuple[str, bytes]] | None
    ) -> list[bytes]:
        """A finished call of ``d`` (``outputs`` None: it failed). Returns the header
        fields its outputs carry for telemetry (``traceparent`` while tracing)."""
        m = self.m
        if m is not None:
            self._sync()
            m.of("handler", d.stream).observe(call.took)
            if d.attempt > 1:  # a retry, or an entry taken over from a dead worker
                m.count("retried", stream=d.stream)
            if outputs is None:
                m.count("failed", stream=d.stream)
            else:
                m.count("handled", stream=d.stream)
                self._llm(call)
                if self.terminal and any(s in self.terminal for s, _ in outputs):
                    self._task_done(d.trace, [s for s, _ in outputs if s in self.terminal])
        if self.spans is None:
            return []
        tp = self.spans.record(
            f"{self.agent} {d.stream}",
            parent=self.spans.parent(d.fields.get(TRACEPARENT)),
            attributes=self._attributes(d.stream, d.entry_id, d.attempt, d.trace),
            started=call.started,
            took=call.took,
            error=call.error,
        )
        return [TRACEPARENT, tp]

    def _llm(self, call: Call) -> None:
        """Model calls and tokens, from the accounting the ``llm`` handler adds to the
        header (a reply from its cache called no model)."""
        header = call.ctx.header
        if not header or "llm_calls" not in header or header.get("llm_cached") == "1":
            return
        assert self.m is not None
        try:
            self.m.count("llm_calls", int(header["llm_calls"]))
            self.m.tokens(int(header["llm_prompt_tokens"]), int(header["llm_completion_tokens"]))
        except (KeyError, ValueError):
            return

    def _task_done(self, trace: bytes, streams: Sequence[str]) -> None:
        start = task_start(trace)
        if start is None or self.m is None:
            return
        seconds = max(0.0, time.time() - start)
        for stream in set(streams):
            self.m.of("task", stream).observe(seconds)

    def _attributes(
        self, stream: str, entry_id: bytes, attempt: int, trace: bytes
    ) -> dict[str, Any]:
        return {
            "meshc.mesh": self.mesh,
            "meshc.agent": self.agent,
            "meshc.stream": stream,
            "meshc.entry_id": entry_id.decode("ascii", "replace"),
            "meshc.attempt": attempt,
            "meshc.trace": trace.decode("utf-8", "replace"),
        }

    # -- outcomes -------------------------------------------------------------------

    def dead_letter(self, stream: str) -> None:
        if self.m is not None:
            self.m.count("dead", stream=stream)
            self._sync()

    def _sync(self) -> None:
        """Duplicate commits are counted by the worker's commit and the join's STORE
        (``Stats.duplicates``); they reach the metric as the next call or merge ends."""
        n = self.stats.duplicates - self._duplicates
        if n and self.m is not None:
            self._duplicates += n
            self.m.count("duplicates", n)

    # -- joins ----------------------------------------------------------------------

    def stored(self, d: Delivery) -> bytes:
        """A partial admitted for its join; the ``traceparent`` to store with it."""
        if self.m is not None:
            self.m.count("handled", stream=d.stream)
        return d.fields.get(TRACEPARENT, b"") if self.spans is not None else b""

    def late(self, n: int) -> None:
        if self.m is not None:
            self.m.count("late", n)
            self._sync()

    def merged(self, call: Call, fields: dict[bytes, bytes]) -> bytes:
        """A finished merge of the join ``fields``; the ``traceparent`` of its span,
        which is a child of the last stored partial and links to every partial."""
        if self.m is not None:
            self._sync()
            self.m.of("handler", "").observe(call.took)
            if call.error is not None:
                self.m.count("failed", stream="")
        if self.spans is None:
            return b""
        parts = fields.get(LINKS, b"").split()
        trace = fields.get(b".trace", b"")
        return self.spans.record(
            f"{self.agent} merge",
            parent=self.spans.parent(parts[-1] if parts else None),
            attributes=self._attributes("", fields.get(b".parent", b""), call.ctx.attempt, trace),
            started=call.started,
            took=call.took,
            error=call.error,
            links=self.spans.link_contexts(parts),
        )

    def emitted(self, fields: dict[bytes, bytes], parts: int) -> None:
        """A merged result written with ``parts`` of the join's lanes."""
        m = self.m
        if m is None:
            return
        m.count("joins")
        if parts < self.lanes:
            m.count("timed_out")
        if self.terminal:
            self._task_done(fields.get(b".trace", fields.get(TRACE, b"")), sorted(self.terminal))
