"""The graph of a core mesh: agents and streams as nodes, reads and writes as edges.

Edges run in the direction messages flow: agent → stream for a write, stream →
agent for a read. Only declared streams become nodes; the checks report the rest.

Two forms of one graph: ``build`` gives the networkx DiGraph that renderers, code
generation and cycle reports work on; ``Index`` numbers the same nodes and edges
with integers for the checks, which walk every node of a mesh of 100,000 agents
several times. A list of small lists is a fraction of the memory of networkx's dict
of dicts, and the walks stay linear in the mesh's size where dicts of that size
fall out of the processor's caches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshc.core import CoreAgent, CoreMesh, Ref

if TYPE_CHECKING:
    import networkx as nx

AGENT = "agent"
STREAM = "stream"


def build(core: CoreMesh) -> nx.DiGraph:
    import networkx as nx  # here, not at the top: validation needs it only for a cycle

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


@dataclass
class Index:
    """The graph of ``build`` with integer nodes: ``names[i]`` is node i's name.

    A name that is both an agent and a stream (MESH108) is one node, as in ``build``.
    ``agents[k]`` is the node of the k-th agent of ``core.agents``; ``writes[k]`` the
    declared streams it writes, each once; ``unresolved`` lists the
    references to names that are no declared stream: (agent, "reads" or "writes",
    ref). ``succ`` holds each node's successors, each once; ``readers[i]`` and
    ``writers[i]`` the agents (nodes) that read and write stream i.
    """

    names: list[str]
    ids: dict[str, int]  # stream name → node
    agents: Sequence[int]
    writes: list[list[int]]
    succ: list[list[int]]
    readers: list[list[int]]
    writers: list[list[int]]
    in_degree: list[int]
    unresolved: list[tuple[CoreAgent, str, Ref]]
    _order: list[int] | None = field(default=None, repr=False)

    def reachable(self, starts: list[int]) -> bytearray:
        """A flag per node: reached from any of ``starts`` (themselves included)."""
        seen = bytearray(len(self.names))
        succ = self.succ
        for s in starts:
            seen[s] = 1
        todo = list(starts)
        while todo:
            for nxt in succ[todo.pop()]:
                if not seen[nxt]:
                    seen[nxt] = 1
                    todo.append(nxt)
        return seen

    def acyclic(self) -> bool:
        return self.topological() is not None

    def topological(self) -> list[int] | None:
        """The nodes in an order where every edge points forward (Kahn's algorithm),
        or None if a cycle leaves some node that can never be peeled off."""
        if self._order is None:
            waiting = list(self.in_degree)
            order = [n for n, d in enumerate(waiting) if d == 0]
            succ = self.succ
            for node in order:  # grows while it is walked
                for nxt in succ[node]:
                    waiting[nxt] -= 1
                    if waiting[nxt] == 0:
                        order.append(nxt)
            self._order = order
        return self._order if len(self._order) == len(self.names) else None


def index(core: CoreMesh) -> Index:
    """Number the nodes and edges of ``build(core)`` in one pass over the mesh."""
    names = list(core.streams)
    streams = len(names)
    ids = dict(zip(names, range(streams), strict=True))  # streams only
    agents: Sequence[int]
    apart = ids.keys().isdisjoint(core.agents)  # the usual case, checked in one C loop
    if apart:  # agents are numbered after the streams, in order
        agents = range(streams, streams + len(core.agents))
        names.extend(core.agents)
    else:  # a name that is both (MESH108) is one node
        agents = []
        for name in core.agents:
            node = ids.get(name)
            if node is None:
                node = len(names)
                names.append(name)
            agents.append(node)
    readers: list[list[int]] = [[] for _ in range(streams)]
    writers: list[list[int]] = [[] for _ in range(streams)]
    in_degree = [0] * len(names)
    all_writes: list[list[int]] = []
    unresolved: list[tuple[CoreAgent, str, Ref]] = []
    get = ids.get
    for node, agent in zip(agents, core.agents.values(), strict=True):
        reads = _nodes(get, streams, agent, "reads", unresolved)
        for stream in reads:
            readers[stream].append(node)
        in_degree[node] += len(reads)
        writes = _nodes(get, streams, agent, "writes", unresolved)
        for stream in writes:
            writers[stream].append(node)
            in_degree[stream] += 1
        all_writes.append(writes)
    # A stream's successors are its readers, an agent's the streams it writes.
    if apart:
        succ = readers + all_writes
    else:  # MESH108: a name that is both is one node, with both kinds of successors
        succ = [*readers, *([] for _ in range(len(names) - streams))]
        for node, writes in zip(agents, all_writes, strict=True):
            succ[node] = writes if node >= streams else readers[node] + writes
    return Index(names, ids, agents, all_writes, succ, readers, writers, in_degree, unresolved)


def _nodes(
    get: Callable[[str, int], int],
    streams: int,
    agent: CoreAgent,
    verb: str,
    unresolved: list[tuple[CoreAgent, str, Ref]],
) -> list[int]:
    """The nodes of the declared streams an agent reads or writes (``verb``), each
    once, in order; references to anything else go to ``unresolved``. Nodes of
    streams are the numbers below ``streams``; ``get`` gives ``streams`` for a name
    that is none."""
    refs = agent.reads if verb == "reads" else agent.writes
    found = [get(ref.name, streams) for ref in refs]
    if len(found) == 1 and found[0] < streams:
        return found  # the usual case: one declared stream
    if not found or (max(found) < streams and len(set(found)) == len(found)):
        return found
    pairs = zip(refs, found, strict=True)
    unresolved.extend((agent, verb, ref) for ref, node in pairs if node >= streams)
    return list(dict.fromkeys(n for n in found if n < streams))


def topological_order(graph: nx.DiGraph) -> list[str]:
    """A stable order (ties broken by name), so generated output never depends on dicts."""
    import networkx as nx

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
