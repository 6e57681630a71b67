"""Checks of the formal definition: names, addressing, writers, reachability, cycles.

Each check is a pure function of the core mesh, its graph and the source (for
positions) that returns diagnostics.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from meshc import codes
from meshc.core import CoreAgent, CoreMesh, Ref
from meshc.diagnostics import Diagnostic, Span
from meshc.graph import AGENT, Index, build
from meshc.source import Source

if TYPE_CHECKING:
    import networkx as nx

STREAM_NAMES = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
AGENT_NAMES = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEYWORDS = frozenset(keyword.kwlist)
# What all names of one grammar, joined by line breaks, look like when all are in it:
# only the grammar's characters, and none of the sequences it never allows.
_ALL_IN = {
    STREAM_NAMES: (re.compile(r"[a-z0-9_.\n-]+"), ("\n\n", "..", "\n.", ".\n"), ".\n", ".\n"),
    AGENT_NAMES: (
        re.compile(r"[A-Za-z0-9_\n]+"),
        ("\n\n", *(f"\n{d}" for d in "0123456789")),
        "0123456789\n",
        "\n",
    ),
}


def _agent_span(source: Source, agent: CoreAgent) -> Span:
    return source.key_span(agent.path)


def check_names(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    bad_streams = _outside(STREAM_NAMES, core.streams)
    if bad_streams:
        for name, stream in core.streams.items():
            if name in bad_streams:
                yield codes.BAD_NAME.at(
                    source.key_span(stream.path),
                    f"stream name `{name}` is outside the grammar of stream names",
                    help_text=f"use dot-separated lowercase words, e.g. `{_suggest_stream(name)}`",
                )
    bad_agents = _outside(AGENT_NAMES, core.agents) | (core.agents.keys() & KEYWORDS)
    both = core.agents.keys() & core.streams.keys()
    if not bad_agents and not both:
        return  # the usual case: no agent is looked at again
    for name, agent in core.agents.items():
        if name in bad_agents:
            yield codes.BAD_NAME.at(
                _agent_span(source, agent),
                f"agent name `{name}` is not a Python-style identifier",
                help_text=f"rename it, e.g. `{_suggest_agent(name)}`",
            )
        if name in both:
            stream_span = source.key_span(core.streams[name].path)
            yield codes.BAD_NAME.at(
                _agent_span(source, agent),
                f"`{name}` names both an agent and a stream; they share one namespace",
                help_text=f"rename the agent, e.g. `{name.replace('.', '_')}_agent`",
                related=[(stream_span, f"stream `{name}` is declared here")],
            )


def _outside(grammar: re.Pattern[str], names: Iterable[str]) -> set[str]:
    """The names that ``grammar`` does not match as a whole.

    A big mesh has hundreds of thousands of names, nearly always all good: one scan
    of them all joined by line breaks (the grammar's characters only, none of the
    sequences it forbids) says so without a call per name. If that scan finds
    anything, each name is matched on its own.
    """
    names = list(names)
    text = "\n".join(names)
    chars, never, bad_first, bad_last = _ALL_IN[grammar]
    if not names:
        return set()
    if (
        text.count("\n") == len(names) - 1  # no name holds a line break
        and chars.fullmatch(text)
        and not any(seq in text for seq in never)
        and text[0] not in bad_first
        and text[-1] not in bad_last
    ):
        return set()
    return {n for n in names if not grammar.fullmatch(n)}


def _suggest_stream(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.-]+", "_", name.lower()).strip("._") or "my.stream"
    return re.sub(r"\.+", ".", cleaned)


def _suggest_agent(name: str) -> str:
    cleaned = re.sub(r"\W+", "_", name).strip("_") or "agent"
    if cleaned[0].isdigit() or keyword.iskeyword(cleaned):
        cleaned = "agent_" + cleaned
    return cleaned


def check_references(core: CoreMesh, source: Source, index: Index) -> Iterator[Diagnostic]:
    """MESH102 (an agent named in reads/writes) and MESH104 (undeclared stream)."""
    declared: list[str] = []
    for agent, verb, ref in index.unresolved:
        if ref.name not in core.dropped:
            declared = declared or sorted(core.streams)
            yield _bad_ref(core, source, agent.name, verb, ref, declared)


def _bad_ref(
    core: CoreMesh, source: Source, agent: str, verb: str, ref: Ref, declared: list[str]
) -> Diagnostic:
    span = source.span(ref.path)
    if ref.name in core.agents:
        target = core.agents[ref.name]
        return codes.AGENT_ADDRESSED.at(
            span,
            f"agent `{agent}` {verb} `{ref.name}`, which is an agent, not a stream",
            help_text=f"declare a stream (e.g. `{agent}.to.{ref.name}`) that `{agent}` writes "
            f"and `{ref.name}` reads; agents address only streams",
            related=[(_agent_span(source, target), f"agent `{ref.name}` is declared here")],
            breaks=(agent,),
        )
    close = difflib.get_close_matches(ref.name, declared, n=1, cutoff=0.6)
    fix = f"did you mean `{close[0]}`?" if close else f"declare `{ref.name}` under `streams`"
    # What follows from the typo breaks too: the agent, and the stream it meant (now
    # "unread" or "unwritten").
    return codes.UNDECLARED_STREAM.at(
        span,
        f"agent `{agent}` {verb} undeclared stream `{ref.name}`",
        help_text=fix,
        breaks=(agent, ref.name, *close),
    )


def check_writers(core: CoreMesh, source: Source, index: Index) -> Iterator[Diagnostic]:
    """MESH103 (several writers), MESH105 (none) and MESH106 (no reader, not terminal)."""
    names = index.names
    for (name, stream), who_k, read_k in zip(
        core.streams.items(), index.writers, index.readers, strict=True
    ):
        if len(who_k) > 1:
            yield _many_writers(core, source, name, [names[k] for k in who_k])
        if name in core.dropped:
            continue  # a broken agent (already reported) may write or read it
        if not who_k:
            readers_of = [names[k] for k in read_k]
            note = f" (read by {_names(readers_of)})" if readers_of else ""
            yield codes.UNWRITTEN_STREAM.at(
                source.key_span(stream.path),
                f"stream `{name}` is written by no agent{note}",
                help_text=f"add `{name}` to an agent's `writes`, or a producer: "
                f"`role: producer, writes: [{name}]`",
                subjects=(name,),
                breaks=(name,),  # its readers are unreachable because of it
            )
        if not read_k and not stream.terminal:
            yield codes.UNREAD_STREAM.at(
                source.key_span(stream.path),
                f"stream `{name}` is read by no agent and is not terminal",
                help_text="mark it `terminal: true` if callers read it, or add a reader",
                subjects=(name,),
            )


def _many_writers(core: CoreMesh, source: Source, name: str, who: list[str]) -> Diagnostic:
    places = []
    for agent in who:
        ref = next(r for r in core.agents[agent].writes if r.name == name)
        places.append((source.span(ref.path), agent))
    places.sort()
    (span, _), others = places[-1], places[:-1]
    return codes.MULTIPLE_WRITERS.at(
        span,
        f"stream `{name}` has {len(who)} writers: {_names(sorted(who))}",
        help_text="give each writer its own stream (e.g. "
        + ", ".join(f"`{name}.{w}`" for w in sorted(who))
        + ") and let the reader read them all",
        related=[(s, f"`{w}` also writes `{name}` here") for s, w in others],
    )


def _names(items: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in items)


def check_roles(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    for name, agent in core.agents.items():
        problem = None if name in core.dropped else _role_problem(agent)
        if problem:
            text, fix = problem
            yield codes.ROLE_SHAPE.at(
                _agent_span(source, agent),
                f"{agent.role} `{name}` {text}",
                help_text=fix,
                subjects=(name,),
            )


def _role_problem(agent: CoreAgent) -> tuple[str, str] | None:
    role = agent.role
    if role == "producer":
        if agent.reads:
            return "reads streams; a producer only writes the intake", "remove `reads`"
        if agent.handler:
            return "has a handler; a producer is only an identity", "remove `handler`"
        if not agent.writes:
            return "writes no stream", "add the intake stream to `writes`"
        return None
    if not agent.reads:
        return "reads no stream", "add its input streams to `reads`"
    if role == "sink":
        return (
            ("writes streams; a sink writes nothing", "remove `writes` or use role specialist")
            if agent.writes
            else _needs_handler(agent)
        )
    if not agent.writes:
        return "writes no stream", "add its output streams to `writes`, or use role `sink`"
    if role == "aggregator":
        if agent.join is None:
            return "has no `join`", "add `join: {on: [key fields], timeout: 30s}`"
        if len(agent.reads) < 2:
            return (
                "joins fewer than two streams",
                "read every lane's output, or use role specialist",
            )
        return None
    if agent.join is not None:
        return "has a `join`, which only aggregators have", "remove `join` or use role aggregator"
    return None if role == "coordinator" else _needs_handler(agent)


def _needs_handler(agent: CoreAgent) -> tuple[str, str] | None:
    if agent.handler is None:
        return "has no handler", "add `handler: package.module:function` (or `llm`)"
    return None


def check_reachability(core: CoreMesh, source: Source, index: Index) -> Iterator[Diagnostic]:
    # Streams a broken agent touches count as fed: it may well write them.
    agents = list(zip(index.agents, core.agents.items(), strict=True))
    starts = [node for node, (_, a) in agents if a.role == "producer"]
    starts += [index.ids[n] for n in core.dropped if n in core.streams]
    reached = index.reachable(starts)
    for node, (name, agent) in agents:
        if reached[node] or agent.role == "producer" or name in core.dropped:
            continue
        if any(r.name in core.dropped or r.name not in core.streams for r in agent.reads):
            continue  # an input that is no stream is reported (MESH102/104) already
        yield codes.UNREACHABLE.at(
            _agent_span(source, agent),
            f"agent `{name}` is unreachable from any producer"
            + (f" (it reads {_names(list(agent.read_names))})" if agent.reads else ""),
            help_text="connect its input to a stream fed from a producer, "
            "or add a producer that writes its input",
            subjects=_upstream(index, name, agent),
            breaks=(name,),  # the agents it feeds are unreachable because of it
        )


def _upstream(index: Index, name: str, agent: CoreAgent) -> list[str]:
    """An agent, its inputs and their writers: whatever broke one of them broke the
    agent's only ways to be reached."""
    inputs = [s for s in agent.read_names if s in index.ids]
    feeders = [index.names[w] for s in inputs for w in index.writers[index.ids[s]]]
    return [name, *inputs, *feeders]


def check_cycles(core: CoreMesh, source: Source, index: Index) -> Iterator[Diagnostic]:
    """MESH101, one diagnostic per strongly connected component (and self-loop)."""
    if index.acyclic():
        return  # the usual case, found without building the networkx graph
    import networkx as nx

    graph = build(core)
    for component in nx.strongly_connected_components(graph):
        nodes = sorted(component)
        if len(nodes) == 1 and not graph.has_edge(nodes[0], nodes[0]):
            continue
        if any(n in core.agents and n in core.streams for n in nodes):
            continue  # one node for an agent and a stream of one name (MESH108): no real cycle
        sub = graph.subgraph(component)
        start = min(n for n in nodes if graph.nodes[n]["kind"] == AGENT)
        edges = nx.find_cycle(sub, source=start)
        yield _cycle(core, source, graph, edges)


def _cycle(
    core: CoreMesh, source: Source, graph: nx.DiGraph, edges: list[tuple[str, str]]
) -> Diagnostic:
    path = [edges[0][0]] + [v for _, v in edges]
    text = " → ".join(path)
    spans = sorted((source.span(graph.edges[u, v]["ref"].path), u, v) for u, v in edges)
    span = spans[-1][0]
    agents = [n for n in path[:-1] if n in core.agents]
    return codes.CYCLE.at(
        span,
        f"cycle: {text}",
        help_text="remove one of these reads/writes, or start a new task on a new stream "
        f"instead of feeding back into {_names(sorted(set(agents)))}",
        related=[(s, f"`{u}` → `{v}`") for s, u, v in spans[:-1]],
    )
