"""The networkx graph of a core mesh: agents and streams as nodes, reads and writes as edges.

Edges run in the direction messages flow: agent → stream for a write, stream →
agent for a read. Only declared streams become nodes; the checks report the rest.
"""

from __future__ import annotations

import networkx as nx
from meshc.expand import CoreMesh

AGENT = "agent"
STREAM = "stream"


def build(core: CoreMesh) -> nx.DiGraph:
    graph = nx.DiGraph()
    for name in core.streams:
        graph.add_node(name, kind=STREAM)
    for name, agent in core.agents.items():
        graph.add_node(name, kind=AGENT)
        for ref in agent.reads:
            if ref.name in core.streams:
                graph.add_edge(ref.name, name, ref=ref)
        for ref in agent.writes:
            if ref.name in core.streams:
                graph.add_edge(name, ref.name, ref=ref)
    return graph


def reachable(graph: nx.DiGraph, starts: list[str]) -> set[str]:
    """Every node reached from any of ``starts`` (themselves included), in one walk.

    One traversal for all starts (not one per producer) over the plain adjacency
    dicts: linear, and a big mesh's hot path.
    """
    adjacency = dict(graph.adjacency())
    seen = {s for s in starts if s in adjacency}
    todo = list(seen)
    while todo:
        for nxt in adjacency[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def topological_order(graph: nx.DiGraph) -> list[str]:
    """A stable order (ties broken by name), so generated output never depends on dicts."""
    return list(nx.lexicographical_topological_sort(graph))


def writers(core: CoreMesh) -> dict[str, list[str]]:
    """Stream → the agents that write it, each once (an agent may list a stream twice)."""
    out: dict[str, list[str]] = {}
    for name, agent in core.agents.items():
        for stream in dict.fromkeys(agent.write_names):
            out.setdefault(stream, []).append(name)
    return out


def readers(core: CoreMesh) -> dict[str, list[str]]:
    """Stream → the agents that read it, each once."""
    out: dict[str, list[str]] = {}
    for name, agent in core.agents.items():
        for stream in dict.fromkeys(agent.read_names):
            out.setdefault(stream, []).append(name)
    return out
