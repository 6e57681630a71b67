"""A task's path for people: a tree for the terminal, JSON, or a Mermaid sequence diagram.

The tree follows the data: an entry, under it the agents that read it (one line per
hop, with its timings), under each agent the entries it wrote. A join has several
parents, so its partials point at it (``-> joined by aggregator``) and the join's hop
starts a tree of its own after theirs: the result comes last, as it did in time.
Offsets (``+12 ms``) count from the task's root entry, by the server's clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from meshc.ops.trace_model import Hop, OpenEnd, TaskTrace, TraceEntry
from meshc.render.sequence import escape

UNICODE = ("├── ", "└── ", "│   ", "    ")
ASCII = ("|-- ", "`-- ", "|   ", "    ")
_ANSI = {"agent": "1", "stream": "36", "dim": "2", "bad": "31", "open": "33", "good": "32"}
_NOT_ID = re.compile(r"\W")


def as_json(trace: TaskTrace) -> str:
    return json.dumps(trace.as_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def ms(value: float) -> str:
    """``7 ms``, ``0.25 ms``, ``1.25 s``: short and exact enough to compare hops."""
    if value >= 1000:
        return f"{value / 1000:.2f}".rstrip("0").rstrip(".") + " s"
    digits = 2 if value < 1 else 1
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") + " ms"


@dataclass
class _Paint:
    on: bool

    def __call__(self, kind: str, text: str) -> str:
        return f"\033[{_ANSI[kind]}m{text}\033[0m" if self.on else text


@dataclass
class _Tree:
    trace: TaskTrace
    paint: _Paint
    glyphs: tuple[str, str, str, str]
    lines: list[str] = field(default_factory=list)
    shown: set[int] = field(default_factory=set)  # hops already printed, by index
    joins: set[int] = field(default_factory=set)  # join hops met under a partial, by index

    def offset(self, e: TraceEntry) -> str:
        return f"+{ms(e.ms - self.trace.first_ms)}"


def tree(trace: TaskTrace, *, color: bool = False, ascii: bool = False) -> str:
    """The task as an indented tree, then how it ended and what was scanned."""
    t = _Tree(trace, _Paint(color), ASCII if ascii else UNICODE)
    p = t.paint
    t.lines.append(f"trace {p('agent', trace.trace)}  {trace.mesh} v{trace.version}: "
                   f"{_status(t)}, {len(trace.agents)} agents")  # fmt: skip
    if trace.root is not None:
        _entry(t, trace.root, "", "")
    while waiting := sorted(t.joins - t.shown):
        _hop(t, waiting[0], "", "")
    orphans = [i for i in range(len(trace.hops)) if i not in t.shown]
    if orphans:  # the root was trimmed, or written before the window: each from its hop
        t.lines.append("not linked to the root entry (its input was not found in the scan):")
        for i in orphans:
            if i not in t.shown:  # not printed under an earlier one meanwhile
                _hop(t, i, "", "")
    t.lines += _ends(t)
    t.lines.append(_scanned(trace))
    return "\n".join(t.lines) + "\n"


def _pads(t: _Tree, tail: str, last: bool) -> tuple[str, str]:
    branch, end, down, blank = t.glyphs
    return (tail + end, tail + blank) if last else (tail + branch, tail + down)


def _entry(t: _Tree, e: TraceEntry, head: str, tail: str) -> None:
    p = t.paint
    words = [p("stream", e.stream), p("dim", e.id), t.offset(e)]
    if e is t.trace.root:
        words.append(f"written by {p('agent', e.agent or '(outside producer)')} at {e.written}")
        if e.span(1):
            words.append(p("dim", f"otel trace {e.span(1)}"))
    words += _entry_notes(t, e)
    if "schema" in e.extra:  # the writer's mesh version and type fingerprint
        words.append(p("dim", f"[{e.extra['schema']}]"))
    t.lines.append(head + "  ".join(words))
    hops = t.trace.hops
    t.joins |= {i for i, h in enumerate(hops) if h.join and any(x is e for x in h.inputs)}
    children = [i for i, h in enumerate(hops) if h.trigger is e and not h.join and i not in t.shown]
    for n, i in enumerate(children):
        _hop(t, i, *_pads(t, tail, n == len(children) - 1))


def _entry_notes(t: _Tree, e: TraceEntry) -> list[str]:
    p = t.paint
    notes = []
    if e.stream in t.trace.terminal:
        notes.append(p("good", "(terminal: the result)"))
    for h in t.trace.hops:
        if h.join and any(i is e for i in h.inputs):
            notes.append(f"-> joined by {p('agent', h.agent)}")
    notes += [p("open", _open_note(o)) for o in t.trace.open_ends if o.entry is e]
    return notes


def _open_note(o: OpenEnd) -> str:
    if o.state == "pending":
        return (f"(pending in group {o.agent}: consumer {o.consumer} holds it, idle "
                f"{ms(o.idle_ms)}, delivered {o.deliveries}x)")  # fmt: skip
    if o.state == "waiting":
        return f"(not yet delivered to group {o.agent})"
    if o.state == "joining":
        return f"(in {o.agent}'s join, waiting for {', '.join(o.missing) or 'its merge'})"
    if o.state == "late":
        return f"(late: {o.agent}'s join was already emitted)"
    return f"(acknowledged by {o.agent} without an output)"


def _hop(t: _Tree, index: int, head: str, tail: str) -> None:
    t.shown.add(index)
    h = t.trace.hops[index]
    t.lines.append(head + _hop_line(t, h))
    for n, e in enumerate(h.outputs):
        _entry(t, e, *_pads(t, tail, n == len(h.outputs) - 1))


def _hop_line(t: _Tree, h: Hop) -> str:
    p = t.paint
    words = [f"{p('agent', h.agent)} (attempt {h.attempt})"]
    if h.join:
        words.append(f"join of {_count(len(h.inputs), 'partial')} ({', '.join(h.lanes)})")
    if h.missing:
        words.append(p("bad", f"timed out, missing: {', '.join(h.missing)}"))
    last = (
        [lane for lane, e in zip(h.lanes, h.inputs, strict=True) if e is h.ready] if h.join else []
    )
    words.append(_timing(h, f" after the last ({last[0]})" if last else ""))
    if h.outputs[0].span(2):
        words.append(p("dim", f"span {h.outputs[0].span(2)}"))
    if h.dead:
        error = " ".join(h.outputs[0].extra.get("error", "").split())
        words.append(p("bad", f"gave up: {error}"))
    return words[0] + "  " + ", ".join(words[1:])


def _timing(h: Hop, after: str = "") -> str:
    """``12 ms = waited 5 ms + handler 7 ms``, or the total alone without ``took``."""
    if h.total_ms is None:
        return "input not found" + (f", handler {ms(h.took_ms)}" if h.took_ms is not None else "")
    total = ms(h.total_ms) + after
    if h.wait_ms is None or h.took_ms is None:
        return total if after else f"{total} in all"
    return f"{total} = waited {ms(h.wait_ms)} + handler {ms(h.took_ms)}"


def _status(t: _Tree) -> str:
    status = t.trace.status
    kind = "good" if status == "completed" else "open" if status == "in flight" else "bad"
    return t.paint(kind, status)


def _ends(t: _Tree) -> list[str]:
    trace, p = t.trace, t.paint
    lines = ["ended:"] if trace.results or trace.dead_letters or trace.open_ends else []
    for e in trace.results:
        lines.append(f"  {p('good', 'result')} {e.stream} {e.id} at {t.offset(e)}")
    for h in trace.timed_out:
        lines.append(f"  {p('bad', 'join timed out')} at {h.agent}: missing {', '.join(h.missing)}")
    for e in trace.dead_letters:
        x = e.extra
        source = f"{x.get('source_stream') or 'its join'} {x.get('source_id', '')}".strip()
        lines.append(f"  {p('bad', 'dead letter')} {e.stream} {e.id} by {e.agent} after "
                     f"{x.get('deliveries', '?')} deliveries of {source}: "
                     f"{' '.join(x.get('error', '').split())}")  # fmt: skip
    for o in trace.open_ends:
        kind = "in flight" if o.in_flight else "stopped"
        lines.append(f"  {p('open', kind)} {o.entry.stream} {o.entry.id} {_open_note(o)}")
    return lines


def _scanned(trace: TaskTrace) -> str:
    s = trace.scan
    parts = "partition" if len(s.partitions) == 1 else "partitions"
    cut = " (stopped at --max-entries: raise it to see more)" if s.truncated else ""
    return (f"scanned {_count(s.entries, 'entry', 'entries')} in {_count(s.keys, 'key')} "
            f"({parts} {', '.join(map(str, s.partitions))}), ids {s.start} to {s.end} "
            f"(window {_span(s.window_ms)}){cut}")  # fmt: skip


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _span(window_ms: int) -> str:
    """A window as it was most likely given: ``1 h``, ``10 min``, else ``ms()``."""
    for unit, size in (("h", 3_600_000), ("min", 60_000)):
        if window_ms >= size and window_ms % size == 0:
            return f"{window_ms // size} {unit}"
    return ms(window_ms)


def mermaid(trace: TaskTrace) -> str:
    """A sequence diagram of this task: agents as participants, each hop an arrow
    from the writer of its input to the agent that read it, with the hop's timings."""
    agents = list(dict.fromkeys([*trace.agents, *(o.agent for o in trace.open_ends)]))
    writers = [e.agent or "outside" for h in trace.hops for e in h.inputs]
    names = list(dict.fromkeys([*agents, *writers]))
    ids = _ids(names)
    lines = [f"%% trace {trace.trace} of {trace.mesh} v{trace.version}: {trace.status}; "
             "generated by meshc trace --format mermaid", "sequenceDiagram"]  # fmt: skip
    body = [f"participant {ids[n]} as {_text(n)}" for n in names]
    events: list[tuple[int, int, list[str]]] = []
    for n, h in enumerate(trace.hops):
        events.append((h.outputs[0].ms, n, _hop_lines(trace, h, ids.__getitem__)))
    for n, o in enumerate(trace.open_ends):
        line = f"{ids[o.entry.agent or 'outside']}-->>{ids[o.agent]}: {_label(trace, o.entry)}"
        events.append((o.entry.ms, len(trace.hops) + n, [line, _note(ids[o.agent], _open_note(o))]))
    for _, _, event in sorted(events, key=lambda x: (x[0], x[1])):
        body += event
    return "\n".join(lines + ["    " + line for line in body]) + "\n"


def _hop_lines(trace: TaskTrace, h: Hop, id_of: Callable[[str], str]) -> list[str]:
    me = id_of(h.agent)
    lines = [f"{id_of(e.agent or 'outside')}->>{me}: {_label(trace, e)}" for e in h.inputs]
    what = f"attempt {h.attempt}, {_timing(h)}"
    if h.missing:
        what += f"; join timed out, missing {', '.join(h.missing)}"
    lines.append(_note(me, what))
    for e in h.outputs:
        if e.dead:
            error = e.extra.get("error", "")
            lines.append(_note(me, f"dead letter {e.stream} {e.id}: {error}"))
        elif e.stream in trace.terminal:
            lines.append(_note(me, f"result {e.stream} {e.id} at +{ms(e.ms - trace.first_ms)}"))
    return lines


def _label(trace: TaskTrace, e: TraceEntry) -> str:
    return _text(f"{e.stream} {e.id} (+{ms(e.ms - trace.first_ms)})")


def _note(participant: str, text: str) -> str:
    return f"Note over {participant}: {_text(text)}"


def _text(text: str) -> str:
    """One line, safe in a Mermaid message or note."""
    flat = " ".join(text.split())[:300]
    return escape(flat).replace("<", "#lt;").replace(">", "#gt;")


def _ids(names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        base = candidate = "a_" + _NOT_ID.sub("_", name)
        n = 1
        while candidate in out.values():
            n += 1
            candidate = f"{base}_{n}"
        out[name] = candidate
    return out
