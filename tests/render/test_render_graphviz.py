"""DOT through real Graphviz (JSON), and SVG, PNG and HTML checked by their structure.

SVG, PNG and HTML depend on the Graphviz version, so no golden bytes here (docs/design.md
section 7): the node and edge sets must match the model's graph instead.
"""

from __future__ import annotations

import json
import struct
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from meshc.api import analyze_text
from meshc.graph import build
from meshc.render import render
from render_parse import from_graph
from render_support import EXAMPLE_IDS, EXAMPLES, example_core

SVG = "{http://www.w3.org/2000/svg}"

WARNED = """
mesh: warned
version: 3
description: 'a <script>alert("x")</script> & friends'
types:
  Doc: {id: str, "note": str}
streams:
  in.docs: {type: Doc}
  out.docs: {type: Doc}
agents:
  feed: {role: producer, writes: [in.docs]}
  copy: {role: specialist, reads: [in.docs], writes: [out.docs], handler: "pkg.mod:copy"}
"""


def _graphviz_json(graphviz_bin: str, dot_text: str) -> dict:
    done = subprocess.run(
        [graphviz_bin, "-Tjson"], input=dot_text, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_dot_is_read_by_graphviz(path: Path, graphviz_bin: str) -> None:
    core = example_core(path)
    data = _graphviz_json(graphviz_bin, str(render(core, "dot")))
    objects = data["objects"]
    clusters = objects[: data.get("_subgraph_cnt", 0)]
    nodes = objects[data.get("_subgraph_cnt", 0) :]
    by_id = {o["_gvid"]: o for o in objects}
    assert {c["name"] for c in clusters} == {f"cluster_{f}" for f in core.families}
    for cluster in clusters:
        family = cluster["name"].removeprefix("cluster_")
        members = {by_id[i]["name"] for i in cluster.get("nodes", [])}
        made = {n for n, a in core.agents.items() if a.family == family}
        made |= {n for n, s in core.streams.items() if s.family == family}
        assert members == made
    kinds = {n["name"]: ("stream" if n["shape"] == "cylinder" else "agent") for n in nodes}
    edges = {
        (
            by_id[e["tail"]]["name"],
            by_id[e["head"]]["name"],
            "read" if e.get("style") == "dashed" else "write",
        )
        for e in data.get("edges", [])
    }
    want = from_graph(build(core))
    assert kinds == want.nodes
    assert edges == want.edges


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_svg_has_one_node_group_per_agent_and_stream(path: Path) -> None:
    core = example_core(path)
    root = ET.fromstring(str(render(core, "svg")))
    assert root.tag == f"{SVG}svg"
    groups = root.iter(f"{SVG}g")
    nodes = [g for g in groups if g.get("class") == "node"]
    titles = sorted(g.findtext(f"{SVG}title") or "" for g in nodes)
    assert titles == sorted([*core.agents, *core.streams])
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert len(edges) == build(core).number_of_edges()


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_png_is_a_picture(path: Path) -> None:
    data = render(example_core(path), "png")
    assert isinstance(data, bytes)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 80, (width, height)
    assert len(data) > 5_000


class _Report(HTMLParser):
    """Collects the tables (rows of cell texts) and what a self-contained page must lack."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _report(text: str) -> _Report:
    parser = _Report()
    parser.feed(text)
    parser.close()
    return parser


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_html_report_structure(path: Path) -> None:
    core = example_core(path)
    page = _report(str(render(core, "html")))
    assert "svg" in page.tags, "the diagram must be inline SVG"
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.urls == [], "a self-contained report refers to nothing outside"
    agents, streams, types = page.tables[:3]
    assert agents[0][:6] == ["agent", "role", "reads", "writes", "handler", "policy"]
    assert sorted(r[0] for r in agents[1:]) == sorted(core.agents)
    assert sorted(r[0] for r in streams[1:]) == sorted(core.streams)
    assert sorted(r[0] for r in types[1:]) == sorted(core.types)
    terminal = {r[0] for r in streams[1:] if r[5] == "yes"}
    assert terminal == {n for n, s in core.streams.items() if s.terminal}


def test_html_escapes_text_and_lists_warnings() -> None:
    analysis = analyze_text(WARNED, "warned.yaml")
    assert analysis.ok and analysis.core is not None
    assert [d.code for d in analysis.diagnostics] == ["MESH106"]
    out = str(render(analysis.core, "html", diagnostics=analysis.diagnostics))
    assert "<script>" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; friends" in out
    page = _report(out)
    diagnostics = page.tables[-1]
    assert diagnostics[0] == ["severity", "code", "where", "message"]
    assert diagnostics[1][:3] == ["warning", "MESH106", "warned.yaml:9:3"]
    assert "out.docs" in diagnostics[1][3]
