"""Property tests: meshc's graph verdicts against an independent networkx oracle,
single mutations of valid meshes, and hostile input that must never raise.

The oracle is built here from the generated dict, with networkx alone: it does not
use meshc.graph, so a bug there cannot hide by being shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from meshc.api import Analysis, analyze_text

ROOT = Path(__file__).parents[2]
ROLES = ["producer", "coordinator", "specialist", "aggregator", "sink"]
FAST = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def analyze(text: str | bytes) -> Analysis:
    """analyze_text, with the promise that it finishes quickly."""
    start = time.perf_counter()
    analysis = analyze_text(text)
    assert time.perf_counter() - start < 2.0
    return analysis


def codes_at(analysis: Analysis, code: str) -> list[Any]:
    return [d for d in analysis.diagnostics if d.code == code]


def messages_of(analysis: Analysis, code: str) -> list[str]:
    """The messages of ``code``: listed, or folded as a note under the error they
    follow from (``as a result, … [CODE]``)."""
    listed = [d.message for d in codes_at(analysis, code)]
    tail = f" [{code}]"
    folded = [
        n.message.removesuffix(tail)
        for d in analysis.diagnostics
        for n in d.related
        if n.message.endswith(tail)
    ]
    return listed + folded


# ----------------------------------------------------------------------------- random meshes


@st.composite
def random_meshes(draw: st.DrawFn) -> dict[str, Any]:
    """Any wiring: cycles, several writers, islands, undeclared streams; names are valid."""
    n_streams = draw(st.integers(1, 9))
    streams = [f"s{i}" for i in range(n_streams)]
    undeclared = ["ghost", "s.missing"]
    refs = st.lists(st.sampled_from(streams + undeclared), max_size=4)
    agents: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 8))):
        role = draw(st.sampled_from(ROLES))
        agent: dict[str, Any] = {"role": role, "writes": draw(refs)}
        if role != "producer" or draw(st.booleans()):
            agent["reads"] = draw(refs)
        if role != "producer":
            agent["handler"] = "app.handlers:run"
        if role == "aggregator":
            agent["join"] = {"on": ["id"]}
        agents[f"a{i}"] = agent
    return {
        "mesh": "random",
        "types": {"T": {"id": "str"}},
        "streams": {s: {"type": "T", "terminal": draw(st.booleans())} for s in streams},
        "agents": agents,
    }


@dataclass
class Oracle:
    """The verdicts, computed from the dict with networkx only."""

    mesh: dict[str, Any]
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    def __post_init__(self) -> None:
        streams = self.mesh["streams"]
        for name in streams:
            self.graph.add_node(("stream", name))
        for name, agent in self.mesh["agents"].items():
            self.graph.add_node(("agent", name))
            for s in agent.get("reads", []):
                if s in streams:
                    self.graph.add_edge(("stream", s), ("agent", name))
            for s in agent["writes"]:
                if s in streams:
                    self.graph.add_edge(("agent", name), ("stream", s))

    def has_cycle(self) -> bool:
        return not nx.is_directed_acyclic_graph(self.graph)

    def multi_written(self) -> set[str]:
        return {
            s for kind, s in self.graph if kind == "stream" and self.graph.in_degree((kind, s)) > 1
        }

    def unreachable(self) -> set[str]:
        """Non-producers no producer reaches; an agent with an undeclared input is not
        reported (its MESH104 says it already)."""
        agents = self.mesh["agents"]
        reached: set[tuple[str, str]] = set()
        for name, agent in agents.items():
            if agent["role"] == "producer":
                reached |= {("agent", name)} | nx.descendants(self.graph, ("agent", name))
        return {
            name
            for name, agent in agents.items()
            if agent["role"] != "producer"
            and ("agent", name) not in reached
            and all(s in self.mesh["streams"] for s in agent.get("reads", []))
        }


@FAST
@given(random_meshes())
def test_graph_verdicts_match_the_networkx_oracle(mesh: dict[str, Any]) -> None:
    analysis = analyze(yaml.safe_dump(mesh, sort_keys=False))
    oracle = Oracle(mesh)
    assert bool(codes_at(analysis, "MESH101")) == oracle.has_cycle()
    many = {d.message.split("`")[1] for d in codes_at(analysis, "MESH103")}
    assert many == oracle.multi_written()
    lost = {message.split("`")[1] for message in messages_of(analysis, "MESH107")}
    assert lost == oracle.unreachable()


def test_oracle_sees_a_plain_cycle() -> None:
    mesh = {
        "streams": {"x": {}, "y": {}},
        "agents": {
            "p": {"role": "producer", "writes": []},
            "a": {"role": "specialist", "reads": ["x"], "writes": ["y"]},
            "b": {"role": "specialist", "reads": ["y"], "writes": ["x"]},
        },
    }
    oracle = Oracle(mesh)
    assert oracle.has_cycle() and oracle.unreachable() == {"a", "b"}


# ----------------------------------------------------------------------------- mutations


@dataclass
class Layout:
    """A valid mesh as data, written out line by line so each list entry has a line."""

    producers: int
    agents: list[tuple[str, list[str], list[str]]]  # (name, reads, writes), in file order
    terminal: set[str]

    @property
    def streams(self) -> list[str]:
        return [s for _, _, writes in self.agents for s in writes]

    def render(self, mark: tuple[str, str, str] | None = None) -> tuple[str, int]:
        """The YAML text; with ``mark`` = (agent, "reads"|"writes", name), that entry is
        appended to the agent's list and its line returned."""
        lines = ["mesh: layout", "types:", "  T:", "    id: str", "streams:"]
        for s in self.streams:
            lines += [f"  {s}:", "    type: T"] + (
                ["    terminal: true"] if s in self.terminal else []
            )
        lines.append("agents:")
        marked = 0
        for name, reads, writes in self.agents:
            producer = name.startswith("p")
            lines += [f"  {name}:", f"    role: {'producer' if producer else 'specialist'}"]
            if not producer:
                lines.append("    handler: app.handlers:run")
            for key, items in (("writes", writes), ("reads", reads)):
                extra = [mark[2]] if mark and mark[:2] == (name, key) else []
                if not items and not extra:
                    continue
                lines.append(f"    {key}:")
                lines += [f"      - {item}" for item in items + extra]
                if extra:
                    marked = len(lines)
        return "\n".join(lines) + "\n", marked

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for name, reads, writes in self.agents:
            g.add_edges_from((s, name) for s in reads)
            g.add_edges_from((name, s) for s in writes)
        return g

    def moved_last(self, agent: str) -> Layout:
        rest = [a for a in self.agents if a[0] != agent]
        return Layout(
            self.producers, rest + [a for a in self.agents if a[0] == agent], self.terminal
        )


@st.composite
def valid_layouts(draw: st.DrawFn) -> Layout:
    """Producers, then specialists that read earlier streams: a DAG with one writer each."""
    agents: list[tuple[str, list[str], list[str]]] = []
    written: list[str] = []
    n_producers = draw(st.integers(1, 3))
    for i in range(n_producers):
        agents.append((f"p{i}", [], [f"in{i}"]))
        written.append(f"in{i}")
    for i in range(draw(st.integers(1, 7))):
        reads = draw(st.lists(st.sampled_from(written), min_size=1, max_size=3, unique=True))
        writes = [f"w{i}.{k}" for k in range(draw(st.integers(1, 2)))]
        agents.append((f"a{i}", reads, writes))
        written += writes
    read = {s for _, reads, _ in agents for s in reads}
    return Layout(n_producers, agents, {s for s in written if s not in read})


@FAST
@given(valid_layouts())
def test_generated_layouts_are_valid(layout: Layout) -> None:
    assert analyze(layout.render()[0]).diagnostics == []


def only(analysis: Analysis) -> tuple[str, int]:
    (diag,) = analysis.diagnostics
    return diag.code, diag.span.line


@FAST
@given(valid_layouts(), st.data())
def test_a_back_edge_is_one_cycle_at_its_line(layout: Layout, data: st.DataObject) -> None:
    specialists = [a for a in layout.agents if not a[0].startswith("p")]
    name, _, writes = data.draw(st.sampled_from(specialists))
    downstream = sorted(s for s in nx.descendants(layout.graph(), name) if s in layout.streams)
    target = data.draw(st.sampled_from(downstream or writes))
    text, line = layout.moved_last(name).render((name, "reads", target))
    assert only(analyze(text)) == ("MESH101", line)


@FAST
@given(valid_layouts(), st.data())
def test_a_second_writer_is_reported_at_its_line(layout: Layout, data: st.DataObject) -> None:
    graph = layout.graph()
    stream = data.draw(st.sampled_from(layout.streams))
    writer = next(n for n, _, w in layout.agents if stream in w)
    # Another agent that the stream does not reach: a second writer without a cycle.
    others = [n for n, _, _ in layout.agents if n != writer and not nx.has_path(graph, stream, n)]
    assume(others)
    name = data.draw(st.sampled_from(others))
    text, line = layout.moved_last(name).render((name, "writes", stream))
    assert only(analyze(text)) == ("MESH103", line)


@FAST
@given(valid_layouts(), st.data())
def test_an_agent_in_reads_is_mesh102_at_its_line(layout: Layout, data: st.DataObject) -> None:
    names = [n for n, _, _ in layout.agents]
    name = data.draw(st.sampled_from([n for n in names if not n.startswith("p")]))
    target = data.draw(st.sampled_from(names))
    text, line = layout.render((name, "reads", target))
    assert only(analyze(text)) == ("MESH102", line)


# ----------------------------------------------------------------------------- hostile input

VOCABULARY = [
    "mesh", "version", "types", "streams", "agents", "lanes", "defaults", "partitions",
    "partition_key", "role", "reads", "writes", "handler", "join", "on", "timeout", "names",
    "count", "input", "output", "stream", "type", "terminal", "agent", "name", "retention",
    "maxlen", "producer", "specialist", "aggregator", "coordinator", "sink", "fanout", "merge",
    "@fam.input", "@fam.output", "{lane}", "str", "int", "list[str]", "dict[str, any]",
    "T | None", "a.b:c", "s.x", "fam", "30s", "-1",
]  # fmt: skip
TOKENS = VOCABULARY + [
    ":", ": ", "- ", "  ", "\n", "\t", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!!map ",
    "!x ", "#", "'", '"', "---\n", "...\n", "<<: ", "? ", "|\n", ">\n", "%YAML 1.2\n", "\\", "\r",
    "\ufeff", "é", "😀", "\x00", "0x1F", "1e400", ".nan",
]  # fmt: skip

yamlish = st.lists(st.sampled_from(TOKENS), max_size=80).map("".join)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
keys = st.sampled_from(VOCABULARY) | st.text(max_size=10)
trees = st.recursive(
    scalars | st.sampled_from(VOCABULARY),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=40,
)
mesh_like = st.fixed_dictionaries(
    {"mesh": st.sampled_from(["m", "Bad Name", ""]) | scalars},
    optional={k: trees for k in ("types", "streams", "agents", "lanes", "defaults")},
)


def never_raises(text: str | bytes) -> None:
    analysis = analyze(text)
    assert isinstance(analysis.diagnostics, list)
    for d in analysis.diagnostics:
        assert d.span.line >= 1 and d.span.column >= 1 and d.message


@FUZZ
@given(st.text())
def test_any_text(text: str) -> None:
    never_raises(text)


@FUZZ
@given(yamlish)
def test_yaml_ish_text(text: str) -> None:
    never_raises(text)


@FUZZ
@given(st.binary())
def test_any_bytes(raw: bytes) -> None:
    never_raises(raw)


@FUZZ
@given(st.one_of(trees, mesh_like))
def test_any_yaml_structure(tree: Any) -> None:
    never_raises(yaml.safe_dump(tree, allow_unicode=True))


def _edit(text: str) -> Callable[[st.DrawFn], str]:
    def draw_edit(draw: st.DrawFn) -> str:
        out = text
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(out)))
            j = draw(st.integers(i, min(len(out), i + 40)))
            out = out[:i] + draw(st.sampled_from(["", *TOKENS])) + out[j:]
        return out

    return draw_edit


EXAMPLE_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "meshes").glob("*.yaml"))]


@FUZZ
@given(st.sampled_from(EXAMPLE_TEXTS).flatmap(lambda t: st.composite(_edit(t))()))
def test_edited_examples(text: str) -> None:
    never_raises(text)
