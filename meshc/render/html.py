"""A self-contained HTML report: the diagram as inline SVG and the mesh as tables.

No scripts, fonts or styles from the network: the page opens from a file, offline.
Every piece of text from the mesh goes through ``html.escape``; the SVG comes from
Graphviz, which escapes its own labels.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from meshc.core import CoreAgent, CoreMesh, CoreStream
from meshc.diagnostics import Diagnostic
from meshc.graph import readers, writers
from meshc.model import POLICY_DEFAULTS
from meshc.render.common import COLORS, FAMILY_FRAME, Topology, count, topology
from meshc.render.live import LiveStats

DURATIONS = ("timeout", "visibility_timeout")
NONE = '<span class="none">—</span>'

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #0f172a; margin: 2rem auto; max-width: 1200px; padding: 0 1.5rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #e2e8f0; }
.sub { color: #475569; margin-top: 0; }
.diagram { border: 1px solid #e2e8f0; border-radius: 8px; padding: .75rem; overflow-x: auto; }
.diagram svg { max-width: 100%; height: auto; }
.legend { color: #475569; font-size: .9rem; }
.swatch { display: inline-block; padding: 0 .45rem; border-radius: 4px; margin-right: .3rem;
          border: 1px solid; font-size: .8rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; vertical-align: top; padding: .35rem .6rem;
         border-bottom: 1px solid #e2e8f0; }
th { background: #f8fafc; font-weight: 600; }
code { font: .85rem ui-monospace, "DejaVu Sans Mono", monospace; }
.warning { color: #b45309; } .error, .dead { color: #dc2626; font-weight: 600; }
.none { color: #94a3b8; }
.policy { color: #64748b; font-size: .85rem; } .policy b { color: #0f172a; }
.policy summary { cursor: pointer; }
"""


def report(
    core: CoreMesh,
    svg: str,
    diagnostics: Sequence[Diagnostic] = (),
    live: LiveStats | None = None,
) -> str:
    """The whole page; ``svg`` is Graphviz's SVG of ``meshc.render.dot.dot(core, live)``."""
    topo = topology(core)
    title = f"{core.name} v{core.version}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{_e(title)} — meshc</title>",
        f"<style>{STYLE}</style></head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(core.description.strip())}</p>',
        f'<p class="sub">{count(len(core.agents), "agent")}, '
        f"{count(len(core.streams), 'stream')}, {count(core.partitions, 'partition')}"
        + (", live figures from the server" if live else "")
        + "</p>",
        "<h2>Diagram</h2>",
        _legend(topo),
        f'<div class="diagram">{_inline(svg)}</div>',
        "<h2>Agents</h2>",
        _table(_agent_head(live), [_agent_row(a, live) for a in _agents(topo)]),
        "<h2>Streams</h2>",
        _table(_stream_head(live), [_stream_row(topo, s, live) for s in _streams(topo)]),
        "<h2>Message types</h2>",
        _table(["type", "fields", "carried by"], _type_rows(topo)),
        "<h2>Diagnostics</h2>",
        _diagnostics(diagnostics),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _inline(svg: str) -> str:
    """Graphviz's SVG without its XML declaration and doctype, fit to be inlined."""
    start = svg.find("<svg")
    return svg[start:].strip() if start >= 0 else ""


def _legend(topo: Topology) -> str:
    roles = sorted({a.role for a in topo.core.agents.values()})
    kinds = [*roles, "stream"] + (["terminal"] if any(s.terminal for s in _streams(topo)) else [])
    swatches = "".join(
        f'<span class="swatch" style="background:{COLORS[k][0]};border-color:{COLORS[k][1]}">'
        f"{_e(k)}</span>"
        for k in kinds
    )
    frames = ""
    if topo.families():
        swatches += (
            f'<span class="swatch" style="background:{FAMILY_FRAME.fill};'
            f'border-color:{FAMILY_FRAME.stroke};border-style:dashed">lane family</span>'
        )
        frames = f" {FAMILY_FRAME.legend}"
    return (
        f'<p class="legend">{swatches}<br>Boxes are agents, cylinders streams. Solid arrow: '
        "the agent publishes (XADD). Dashed arrow: the agent's consumer group reads "
        f"(XREADGROUP, then XACK).{frames}</p>"
    )


def _agents(topo: Topology) -> list[CoreAgent]:
    return [topo.core.agents[n] for n in topo.agents]


def _streams(topo: Topology) -> list[CoreStream]:
    return [topo.core.streams[n] for n in topo.streams]


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table; ``rows`` hold cells that are already HTML (escaped where they come from)."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{th}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _names(names: Iterable[str]) -> str:
    items = [f"<code>{_e(n)}</code>" for n in names]
    return "<br>".join(items) if items else NONE


def _agent_head(live: LiveStats | None) -> list[str]:
    head = ["agent", "role", "reads", "writes", "handler", "policy"]
    return [*head, "dead letters"] if live is not None else head


def _agent_row(agent: CoreAgent, live: LiveStats | None) -> list[str]:
    handler = (
        f"<code>{_e(agent.handler)}</code>" if agent.handler else '<span class="none">—</span>'
    )
    policy = _policy(agent)
    if agent.join is not None:
        keys = ", ".join(agent.join.on)
        policy += f"<div>join on {_e(keys)}, timeout {agent.join.timeout:g}s</div>"
    row = [
        f"<code>{_e(agent.name)}</code>",
        _e(agent.role),
        _names(agent.read_names),
        _names(agent.write_names),
        handler,
        policy,
    ]
    if live is not None:
        n = live.dead_count(agent.name)
        row.append(f'<span class="dead">{n}</span>' if n else "0")
    return row


def _policy(agent: CoreAgent) -> str:
    """What the mesh sets (meshc's defaults folded away), then every effective value."""
    if agent.role == "producer":
        return '<span class="none">— (an identity for outside writers)</span>'
    shown = {
        key: _e(f"{key} {value:g}s" if key in DURATIONS else f"{key} {value}")
        for key, value in sorted(agent.policy.items())
        if value is not None
    }
    changed = [text for key, text in shown.items() if agent.policy[key] != POLICY_DEFAULTS.get(key)]
    head = ", ".join(f"<b>{t}</b>" for t in changed) or "defaults"
    return (
        f'<details class="policy"><summary>{head}</summary>'
        + "<br>".join(shown.values())
        + "</details>"
    )


def _stream_head(live: LiveStats | None) -> list[str]:
    head = ["stream", "type", "writer", "readers", "retention", "terminal"]
    return [*head, "length", "groups"] if live is not None else head


def _stream_row(topo: Topology, stream: CoreStream, live: LiveStats | None) -> list[str]:
    core = topo.core
    bounds = []
    if stream.retention is not None:
        if stream.retention.maxlen is not None:
            bounds.append(f"maxlen {stream.retention.maxlen}")
        if stream.retention.max_age is not None:
            bounds.append(f"max_age {stream.retention.max_age:g}s")
    if stream.max_backlog is not None:
        bounds.append(f"max_backlog {stream.max_backlog}")
    row = [
        f"<code>{_e(stream.name)}</code>",
        f"<code>{_e(stream.type)}</code>",
        _names(writers(core).get(stream.name, [])),
        _names(readers(core).get(stream.name, [])),
        _e(", ".join(bounds)) if bounds else '<span class="none">keep all</span>',
        "yes" if stream.terminal else "",
    ]
    if live is not None:
        groups = [
            f"{_e(a)}: {_e(live.read_note(stream.name, a))}"
            for a in readers(core).get(stream.name, [])
        ]
        row += [str(live.lengths.get(stream.name, 0)), "<br>".join(groups)]
    return row


def _type_rows(topo: Topology) -> list[list[str]]:
    carried: dict[str, list[str]] = {}
    for stream in _streams(topo):
        carried.setdefault(stream.type, []).append(stream.name)
    rows = []
    for name in sorted(topo.core.types):
        fields = topo.core.types[name]
        shown = "<br>".join(f"<code>{_e(f)}: {_e(t)}</code>" for f, t in fields.items())
        rows.append([f"<code>{_e(name)}</code>", shown, _names(carried.get(name, []))])
    return rows


def _diagnostics(diagnostics: Sequence[Diagnostic]) -> str:
    if not diagnostics:
        return '<p class="none">No warnings: the mesh validates cleanly.</p>'
    rows = [
        [
            f'<span class="{_e(d.severity)}">{_e(d.severity)}</span>',
            f"<code>{_e(d.code)}</code>",
            _e(f"{d.span.file}:{d.span.line}:{d.span.column}"),
            _e(d.message) + (f"<br><i>help: {_e(d.help)}</i>" if d.help else ""),
        ]
        for d in diagnostics
    ]
    return _table(["severity", "code", "where", "message"], rows)
