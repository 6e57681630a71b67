"""What every renderer needs from a core mesh: a stable order, edges, ids and colours.

Renderers never walk the core mesh's dicts directly: nodes are drawn in a layered
topological order (longest path from a producer, then name), so a diagram changes
only when the topology does, never when keys are reordered in the YAML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx
from meshc.core import CoreAgent, CoreMesh
from meshc.graph import AGENT, build, topological_order, writers

WRITE = "write"
READ = "read"

# (fill, stroke) per role and per kind of stream; one palette for every format.
COLORS: dict[str, tuple[str, str]] = {
    "producer": ("#dbeafe", "#1d4ed8"),
    "coordinator": ("#ede9fe", "#6d28d9"),
    "specialist": ("#dcfce7", "#15803d"),
    "aggregator": ("#fef3c7", "#b45309"),
    "sink": ("#f3f4f6", "#374151"),
    "stream": ("#f8fafc", "#64748b"),
    "terminal": ("#e0f2fe", "#0369a1"),
    "dead": ("#fee2e2", "#dc2626"),
}

LEGEND = "solid arrow: XADD (an agent publishes); dashed: XREADGROUP + XACK (its group reads)"


@dataclass(frozen=True)
class FrameStyle:
    """How every format draws a lane family: a dashed frame around its lanes, titled
    with the family's name and width. Each renderer writes these values in its own
    syntax; none keeps colours or words of its own for a family."""

    fill: str = "#ffffff"
    stroke: str = "#94a3b8"
    text: str = "#475569"
    dash: tuple[int, int] = (5, 4)  # drawn, gap (Mermaid; Graphviz has one dash pattern)
    font_size: int = 11
    legend: str = "Dashed frames are lane families."

    def title(self, family: str, lanes: int) -> str:
        return f"{family}: {count(lanes, 'lane')}"


FAMILY_FRAME = FrameStyle()

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Edge:
    """One arrow in the direction messages flow: agent → stream (write), stream → agent (read)."""

    source: str
    target: str
    kind: str

    @property
    def stream(self) -> str:
        return self.target if self.kind == WRITE else self.source

    @property
    def agent(self) -> str:
        return self.source if self.kind == WRITE else self.target


@dataclass(frozen=True)
class Topology:
    """The mesh laid out for drawing: nodes in topological order, edges in that order too."""

    core: CoreMesh
    order: tuple[str, ...]
    edges: tuple[Edge, ...]
    ids: dict[str, str] = field(default_factory=dict)
    _rank: dict[str, int] = field(default_factory=dict, repr=False)
    _out: dict[str, list[Edge]] = field(default_factory=dict, repr=False)

    @property
    def agents(self) -> list[str]:
        return [n for n in self.order if n in self.core.agents]

    @property
    def streams(self) -> list[str]:
        return [n for n in self.order if n in self.core.streams]

    def is_agent(self, name: str) -> bool:
        return name in self.core.agents

    def in_order(self, names: Iterable[str]) -> list[str]:
        """The declared ones of ``names``, once each, in drawing order."""
        return sorted({n for n in names if n in self._rank}, key=self._rank.__getitem__)

    def out_edges(self, name: str) -> list[Edge]:
        return self._out.get(name, [])

    def family_members(self, family: str) -> list[str]:
        """Agents and streams made by one lane family, in drawing order."""
        return [n for n in self.order if _family_of(self.core, n) == family]

    def free_nodes(self) -> list[str]:
        """Nodes that belong to no lane family."""
        return [n for n in self.order if _family_of(self.core, n) is None]

    def families(self) -> list[str]:
        made = {_family_of(self.core, n) for n in self.order}
        return sorted(f for f in self.core.families if f in made)

    def stream_class(self, name: str) -> str:
        return "terminal" if self.core.streams[name].terminal else "stream"


def topology(core: CoreMesh) -> Topology:
    graph = build(core)
    order = tuple(layered_order(graph, lane_positions(core)))
    rank = {name: i for i, name in enumerate(order)}
    out: dict[str, list[Edge]] = {}
    for name in order:
        kind = WRITE if graph.nodes[name].get("kind") == AGENT else READ
        targets = sorted(graph.successors(name), key=rank.__getitem__)
        out[name] = [Edge(name, t, kind) for t in targets]
    edges = tuple(e for name in order for e in out[name])
    ids = unique_ids(core.agents, "a_") | unique_ids(core.streams, "s_")
    return Topology(core, order, edges, ids, rank, out)


def layered_order(graph: nx.DiGraph, lanes: dict[str, tuple[str, int]] | None = None) -> list[str]:
    """Nodes by (longest path from a source, name): a topological order that keeps
    each column of the diagram together (all lanes' streams, then all specialists …).

    ``lanes`` gives the nodes of lane families their (family, lane index): within a
    column they follow their family's declared lane order (`names: [grammar,
    clarity, …]`, or slots 0, 1 … 10), not the alphabet, which a reader of the mesh
    file would not expect and which puts slot 10 before slot 2.
    """
    lanes = lanes or {}
    depth: dict[str, int] = {}
    for name in topological_order(graph):
        depth[name] = max((depth[p] + 1 for p in graph.predecessors(name)), default=0)

    def key(name: str) -> tuple[int, str, int, str]:
        group, index = lanes.get(name, (name, 0))
        return depth[name], group, index, name

    return sorted(depth, key=key)


def lane_positions(core: CoreMesh) -> dict[str, tuple[str, int]]:
    """Each agent and stream made by a lane family → (family, its lane's index)."""
    index = {(f, lane): i for f, lanes in core.families.items() for i, lane in enumerate(lanes)}
    out: dict[str, tuple[str, int]] = {}
    for table in (core.streams, core.agents):
        for name, item in table.items():
            if item.family is not None and item.lane is not None:
                out[name] = (item.family, index.get((item.family, item.lane), 0))
    return out


def unique_ids(names: Iterable[str], prefix: str) -> dict[str, str]:
    """Names → identifiers safe in Mermaid and DOT (``doc.review`` → ``s_doc_review``).

    Two names that sanitize alike (``a.b`` and ``a_b``) get ``_2``, ``_3`` … in name
    order, so the mapping depends on the set of names only.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(names):
        base = prefix + _UNSAFE.sub("_", name)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        out[name] = candidate
    return out


def count(n: int, noun: str) -> str:
    """``1 lane``, ``4 lanes``: a number with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def role_notes(agent: CoreAgent) -> list[str]:
    """What a diagram writes under an agent's name: its role, and for an aggregator
    the keys its join matches partials on (`join on doc_id, chunk_id`)."""
    notes = [agent.role]
    if agent.join is not None:
        notes.append("join on " + ", ".join(agent.join.on))
    return notes


def agent_depths(core: CoreMesh, topo: Topology) -> dict[str, int]:
    """Longest number of hops from a producer: agents at one depth run side by side."""
    written_by = writers(core)
    depth: dict[str, int] = {}
    for name in topo.agents:
        before = [
            depth[w]
            for s in core.agents[name].read_names
            for w in written_by.get(s, [])
            if w in depth
        ]
        depth[name] = max(before, default=-1) + 1
    return depth


def _family_of(core: CoreMesh, name: str) -> str | None:
    item = core.agents.get(name) or core.streams.get(name)
    return item.family if item is not None else None
