"""``meshc render meshes/doc_review.yaml`` draws the reference topology of docs/design.md §1.

The table of docs/design.md section 1, transcribed: each stream, who writes it, who reads
it. The Mermaid and DOT outputs are parsed back and must show exactly these edges.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from render_parse import Parsed, parse_dot, parse_mermaid
from render_support import ROOT

LENSES = ("grammar", "clarity", "tone", "structure")

# stream → (written by, read by), as in docs/design.md section 1.
REFERENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "doc.review.tasks": ("ingestion", ("coordinator",)),
    **{f"doc.review.{lens}": ("coordinator", (lens,)) for lens in LENSES},
    **{f"doc.suggestions.{lens}": (lens, ("aggregator",)) for lens in LENSES},
    "doc.review.summary": ("aggregator", ()),  # terminal: the caller reads it
}


def _expected() -> Parsed:
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for stream, (writer, readers) in REFERENCE.items():
        nodes[stream] = "stream"
        nodes[writer] = "agent"
        edges.add((writer, stream, "write"))
        for reader in readers:
            nodes[reader] = "agent"
            edges.add((stream, reader, "read"))
    return Parsed(nodes, edges)


def _cli(fmt: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "meshc", "render", "meshes/doc_review.yaml", "--format", fmt],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("fmt, parse", [("mermaid", parse_mermaid), ("dot", parse_dot)])
def test_reference_topology_edge_for_edge(fmt: str, parse: object) -> None:
    assert callable(parse)
    got: Parsed = parse(_cli(fmt))
    want = _expected()
    assert got.nodes == want.nodes
    assert sorted(got.edges - want.edges) == [], "edges the reference does not have"
    assert sorted(want.edges - got.edges) == [], "reference edges missing from the diagram"


def test_summary_is_drawn_as_terminal() -> None:
    out = _cli("mermaid")
    assert "class s_doc_review_summary terminal" in out
    assert "doc.review.summary<br/>ReviewSummary (terminal)" in out
