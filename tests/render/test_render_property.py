"""For random valid meshes, the Mermaid and DOT diagrams show exactly the model's graph.

Names are drawn from a tiny alphabet with ``.``, ``-`` and ``_`` so that different
names often sanitize to the same Mermaid id (``a-b`` and ``a_b``): the ids must
still be unique and every edge must land on the right node.
"""

from __future__ import annotations

import json
import keyword

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from meshc.api import analyze_text
from meshc.graph import build
from meshc.render import render
from render_parse import from_graph, parse_dot, parse_mermaid
from render_support import sequence_participants

WORD = st.text(alphabet="ab-_2", min_size=1, max_size=3)
STREAM = st.lists(WORD, min_size=1, max_size=3).map(".".join)
AGENT = st.from_regex(r"[A-C][a-c_0-9]{0,3}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)
LANES = st.one_of(
    st.integers(2, 3).map(lambda n: {"count": n}),
    st.lists(st.text(alphabet="pq_", min_size=1, max_size=2), min_size=2, max_size=3, unique=True)
    .map(lambda names: {"names": names}),
)  # fmt: skip


@st.composite
def mesh_texts(draw: st.DrawFn) -> str:
    streams = draw(st.lists(STREAM, min_size=1, max_size=7, unique=True))
    agents = draw(st.lists(AGENT, min_size=2, max_size=6, unique=True))
    producer, workers = agents[0], agents[1:]
    owner = sorted(draw(st.lists(st.integers(0, len(workers)), min_size=len(streams),
                                 max_size=len(streams))))  # fmt: skip
    owner[0] = 0
    spec: dict[str, dict] = {producer: {"role": "producer", "writes": []}}
    for i, stream in enumerate(streams):
        if owner[i] == 0:
            spec[producer]["writes"].append(stream)
    read: set[str] = set()
    for j, name in enumerate(workers, start=1):
        ready = [s for i, s in enumerate(streams) if owner[i] < j]
        reads = draw(st.lists(st.sampled_from(ready), min_size=1, max_size=3, unique=True))
        writes = [s for i, s in enumerate(streams) if owner[i] == j]
        read.update(reads)
        role = "specialist" if writes else "sink"
        spec[name] = {"role": role, "reads": reads, "writes": writes, "handler": "pkg.mod:f"}
    mesh: dict = {
        "mesh": "prop",
        "version": 1,
        "types": {"T": {"id": "str"}},
        "streams": {s: {"type": "T", "terminal": s not in read} for s in streams},
        "agents": spec,
    }
    if draw(st.booleans()):
        _add_family(mesh, draw(LANES), draw(st.sampled_from(streams)))
    # JSON is YAML with every string quoted: a name like `-.2` must not become a number.
    return json.dumps(mesh, indent=1)


def _add_family(mesh: dict, lanes: dict, source: str) -> None:
    """A coordinator → lane family → aggregator branch hanging off ``source``."""
    mesh["streams"][source]["terminal"] = False
    mesh["streams"]["zz.done"] = {"type": "T", "terminal": True}
    mesh["lanes"] = {
        "fam": {
            **lanes,
            "input": {"stream": "zz.in.{lane}", "type": "T"},
            "output": {"stream": "zz.out.{lane}", "type": "T"},
            "agent": {"name": "L_{lane}", "handler": "pkg.mod:lane"},
        }
    }
    mesh["agents"]["Kcoord"] = {
        "role": "coordinator", "reads": [source], "writes": ["@fam.input"], "handler": "fanout",
    }  # fmt: skip
    mesh["agents"]["Gjoin"] = {
        "role": "aggregator", "reads": ["@fam.output"], "writes": ["zz.done"],
        "handler": "pkg.mod:join", "join": {"on": ["id"]},
    }  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mesh_texts())
def test_diagrams_show_exactly_the_model_graph(text: str) -> None:
    analysis = analyze_text(text, "prop.yaml")
    assume(analysis.ok)
    assert analysis.core is not None
    want = from_graph(build(analysis.core))
    assert parse_mermaid(str(render(analysis.core, "mermaid"))) == want
    assert parse_dot(str(render(analysis.core, "dot"))) == want
    tree = str(render(analysis.core, "text"))
    assert all(name in tree for name in want.nodes)
    sequence = str(render(analysis.core, "sequence"))
    assert all(f" as {name}\n" in sequence for name in sequence_participants(analysis.core))


def test_generator_mostly_yields_valid_meshes() -> None:
    """Guards the property test against silently skipping everything."""
    valid = 0

    @settings(max_examples=60, deadline=None)
    @given(mesh_texts())
    def count(text: str) -> None:
        nonlocal valid
        analysis = analyze_text(text, "prop.yaml")
        if not analysis.ok:
            raise AssertionError([d.message for d in analysis.diagnostics if d.is_error])
        valid += 1

    count()
    assert valid >= 50
