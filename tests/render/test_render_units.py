"""Small pieces: ids, escaping, ordering, and sizes that must not break a renderer."""

from __future__ import annotations

import time

import yaml
from meshc.api import analyze_text
from meshc.render import render
from meshc.render.common import FAMILY_FRAME, unique_ids
from meshc.render.dot import quote
from meshc.render.html import report
from meshc.render.mermaid import escape
from meshc.render.sequence import escape as seq_escape
from render_support import ROOT, example_core


def test_unique_ids_are_safe_unique_and_stable() -> None:
    names = ["a.b", "a-b", "a_b", "a_b_2", "x"]
    ids = unique_ids(names, "s_")
    assert ids == {
        "a-b": "s_a_b",
        "a.b": "s_a_b_2",
        "a_b": "s_a_b_3",
        "a_b_2": "s_a_b_2_2",
        "x": "s_x",
    }
    assert unique_ids(reversed(names), "s_") == ids


def test_escapes() -> None:
    assert escape('say "hi" <b> #1') == "say #quot;hi#quot; #lt;b#gt; #35;1"
    assert seq_escape("a;b #c") == "a#59;b #35;c"
    assert quote('a "b" \\ c') == '"a \\"b\\" \\\\ c"'


def _chain(n: int) -> str:
    streams = {f"s.{i}": {"type": "T"} for i in range(n)}
    streams[f"s.{n - 1}"]["terminal"] = True
    agents: dict[str, dict] = {"p": {"role": "producer", "writes": ["s.0"]}}
    for i in range(1, n):
        agents[f"a{i}"] = {
            "role": "specialist", "reads": [f"s.{i - 1}"], "writes": [f"s.{i}"],
            "handler": "m:f",
        }  # fmt: skip
    mesh = {"mesh": "chain", "version": 1, "types": {"T": {"id": "str"}}}
    return yaml.safe_dump({**mesh, "streams": streams, "agents": agents})


def test_a_long_chain_renders_without_recursion_errors() -> None:
    analysis = analyze_text(_chain(1500), "chain.yaml")
    assert analysis.ok and analysis.core is not None
    for fmt in ("mermaid", "sequence", "dot", "text"):
        assert "s.1499" in str(render(analysis.core, fmt))


def _render_cpu(n: int, formats: tuple[str, ...]) -> float:
    """CPU seconds (best of 3) to draw a chain of ``n`` in ``formats``."""
    analysis = analyze_text(_chain(n), "chain.yaml")
    assert analysis.ok and analysis.core is not None
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for fmt in formats:
            render(analysis.core, fmt)
        best = min(best, time.process_time() - start)
    return best


def test_the_flowchart_and_dot_grow_linearly_with_the_mesh() -> None:
    # Both sizes measured alike on the same machine: a 10x longer chain takes about
    # 10x the time when drawing is linear, about 100x when it is quadratic. (The text
    # tree of a chain is quadratic by nature: each level is indented one step more.)
    formats = ("mermaid", "dot")
    assert _render_cpu(1500, formats) / _render_cpu(150, formats) < 40


def test_every_format_draws_a_lane_family_with_the_one_frame_style() -> None:
    core = example_core(ROOT / "meshes" / "doc_review.yaml")
    title = FAMILY_FRAME.title("review", 4)
    mermaid = str(render(core, "mermaid"))
    assert f'subgraph f_review["{title}"]' in mermaid
    drawn, gap = FAMILY_FRAME.dash
    frame = f"fill:{FAMILY_FRAME.fill},stroke:{FAMILY_FRAME.stroke},stroke-dasharray:{drawn} {gap}"
    assert f"style f_review {frame}" in mermaid
    dot = str(render(core, "dot"))
    assert (
        f'label="{title}"; style="rounded,dashed"; color="{FAMILY_FRAME.stroke}"; '
        f'fontcolor="{FAMILY_FRAME.text}"; fontsize={FAMILY_FRAME.font_size};'
    ) in dot
    page = report(core, "<svg></svg>")
    assert f"border-color:{FAMILY_FRAME.stroke};border-style:dashed" in page
    assert FAMILY_FRAME.legend in page
    plain = report(example_core(ROOT / "meshes" / "pipeline.yaml"), "<svg></svg>")
    assert FAMILY_FRAME.legend not in plain and "border-style:dashed" not in plain
