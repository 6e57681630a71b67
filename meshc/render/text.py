"""The topology as an indented tree from the producers down, for a terminal or ssh.

Agents and streams alternate by level: an agent's children are the streams it
writes, a stream's children the agents whose groups read it. A node reached a second
time (an aggregator's other lanes) is named and marked ``(shown above)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshc.core import CoreMesh
from meshc.render.common import Topology, count, role_notes, topology
from meshc.render.live import LiveStats

UNICODE = ("├── ", "└── ", "│   ", "    ")
ASCII = ("|-- ", "`-- ", "|   ", "    ")


@dataclass
class _Walk:
    topo: Topology
    live: LiveStats | None
    glyphs: tuple[str, str, str, str]
    seen: set[str] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)


def text(core: CoreMesh, live: LiveStats | None = None, *, ascii: bool = False) -> str:
    topo = topology(core)
    walk = _Walk(topo, live, ASCII if ascii else UNICODE)
    walk.lines += [
        f"{core.name} v{core.version}: {count(len(core.agents), 'agent')}, "
        f"{count(len(core.streams), 'stream')}",
        "agents [role] write the streams below them; streams (type) are read below by "
        "each agent's consumer group",
    ]
    roots = [a for a in topo.agents if not topo.in_order(core.agents[a].read_names)]
    for root in roots:
        walk.lines.append("")
        _visit(walk, root)
    rest = [n for n in topo.order if n not in walk.seen]
    if rest:
        walk.lines += ["", "not reachable from a producer:"]
        walk.lines += ["  " + _describe(walk, n, None) for n in rest]
    return "\n".join(walk.lines) + "\n"


def _visit(walk: _Walk, root: str) -> None:
    """Depth first with an explicit stack, so a long chain cannot exhaust recursion."""
    branch, last, down, blank = walk.glyphs
    stack: list[tuple[str, str, str, str | None]] = [(root, "", "", None)]
    while stack:
        name, head, tail, via = stack.pop()
        label = _describe(walk, name, via)
        if name in walk.seen:
            walk.lines.append(f"{head}{label} (shown above)")
            continue
        walk.seen.add(name)
        walk.lines.append(head + label)
        children = [e.target for e in walk.topo.out_edges(name)]
        for i in reversed(range(len(children))):
            final = i == len(children) - 1
            pad = (last, blank) if final else (branch, down)
            stack.append((children[i], tail + pad[0], tail + pad[1], name))


def _describe(walk: _Walk, name: str, via: str | None) -> str:
    core, live = walk.topo.core, walk.live
    if walk.topo.is_agent(name):
        words = [name, f"[{'; '.join(role_notes(core.agents[name]))}]"]
        if live is not None and via is not None:
            words.append(f"({live.read_note(via, name)})")
        if live is not None and live.dead_count(name):
            words.append(f"!! {live.dead_note(name)}")
        return " ".join(words)
    stream = core.streams[name]
    words = [name, f"({stream.type})"]
    if stream.terminal:
        words.append("(terminal)")
    if live is not None:
        words.append(f"[{live.stream_note(name)}]")
    return " ".join(words)
