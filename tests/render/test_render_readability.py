"""What makes a diagram read well: lanes in the order the mesh declares them, the join
keys on the aggregator, plurals, a sequence diagram with a lane family as one
participant, and a PNG of the resolution and size asked for."""

from __future__ import annotations

import json
import re
import struct

import pytest
from meshc.api import analyze_text
from meshc.cli import main
from meshc.core import CoreMesh
from meshc.render import render, report, run_graphviz
from meshc.render.dot import dot
from render_support import ROOT, example_core

REVIEW = ROOT / "meshes" / "doc_review.yaml"
LENSES = ["grammar", "clarity", "tone", "structure"]  # as meshes/doc_review.yaml lists them
SLOTS = """\
mesh: twelve
version: 1
types:
  T: {id: str}
  M: {id: str, parts: "dict[str, any]", missing: "list[str]"}
streams:
  tasks: {type: T}
  merged: {type: M, terminal: true}
lanes:
  slot:
    count: 12
    input: {stream: "s.in.{lane}", type: T}
    output: {stream: "s.out.{lane}", type: T}
    agent: {name: "slot_{lane}", handler: "pkg.mod:run"}
agents:
  feed: {role: producer, writes: [tasks]}
  split: {role: coordinator, reads: [tasks], writes: ["@slot.input"]}
  join: {role: aggregator, reads: ["@slot.output"], writes: [merged], join: {on: [id]}}
"""


def _core(text: str) -> CoreMesh:
    analysis = analyze_text(text)
    assert analysis.ok and analysis.core is not None, analysis.diagnostics
    return analysis.core


def _top_to_bottom(core: CoreMesh, names: list[str]) -> list[str]:
    """``names`` in the order Graphviz lays them out, top first (its y grows upwards)."""
    layout = json.loads(run_graphviz(dot(core), "json"))
    y = {o["name"]: float(o["pos"].split(",")[1]) for o in layout["objects"] if "pos" in o}
    return sorted(names, key=lambda n: -y[n])


def test_lanes_are_laid_out_in_their_declared_order() -> None:
    core = example_core(REVIEW)
    assert _top_to_bottom(core, LENSES) == LENSES
    inputs = [f"doc.review.{lens}" for lens in LENSES]
    assert _top_to_bottom(core, inputs) == inputs
    flowchart = str(render(core, "mermaid"))
    assert [flowchart.index(f"a_{lens}[[") for lens in LENSES] == sorted(
        flowchart.index(f"a_{lens}[[") for lens in LENSES
    )


def test_numbered_slots_run_0_to_11_not_as_text_sorts_them() -> None:
    core = _core(SLOTS)
    agents = [f"slot_{i}" for i in range(12)]
    assert _top_to_bottom(core, agents) == agents
    tree = str(render(core, "text"))
    assert [tree.index(f"slot_{i} [") for i in range(12)] == sorted(
        tree.index(f"slot_{i} [") for i in range(12)
    )


def test_the_aggregator_shows_its_join_keys() -> None:
    core = example_core(REVIEW)
    assert "aggregator<br/>aggregator<br/>join on doc_id, chunk_id" in str(render(core, "mermaid"))
    assert "join on doc_id, chunk_id</FONT>" in str(render(core, "dot"))
    assert "aggregator [aggregator; join on doc_id, chunk_id]" in str(render(core, "text"))
    assert 'coordinator<br/>coordinator"' in str(render(core, "mermaid"))  # no join, no note


def test_counts_read_as_words() -> None:
    one = example_core(ROOT / "meshes" / "pipeline.yaml")
    svg = '<svg xmlns="http://www.w3.org/2000/svg"></svg>'

    assert "3 agents, 3 streams, 1 partition<" in report(one, svg)
    four = example_core(ROOT / "tests" / "render" / "cases" / "partitioned.yaml")
    assert ", 4 partitions<" in report(four, svg)
    single = (
        "mesh: one\ntypes:\n  T: {id: str}\nlanes:\n  slot:\n    count: 1\n"
        '    input: {stream: "s.in.{lane}", type: T}\n'
        '    output: {stream: "s.out.{lane}", type: T}\n'
        '    agent: {name: "slot_{lane}", handler: "pkg.mod:run"}\n'
        'agents:\n  feed: {role: producer, writes: ["@slot.input"]}\n'
    )
    assert 'f_slot["slot: 1 lane"]' in str(render(_core(single), "mermaid"))
    assert 'f_slot["slot: 12 lanes"]' in str(render(_core(SLOTS), "mermaid"))


def test_a_lane_family_is_one_participant_of_the_sequence() -> None:
    seq = str(render(example_core(REVIEW), "sequence"))
    participants = re.findall(r"^    (?:participant|actor) \w+ as (.+)$", seq, re.M)
    assert participants == [
        "ingestion",
        "doc.review.tasks",
        "coordinator",
        "review ×4",
        "aggregator",
        "doc.review.summary",
        "caller",
    ]
    assert "a_coordinator->>f_review: XADD doc.review.{lane} ReviewTask ×4" in seq
    assert "Note over f_review: 4 lanes: grammar, clarity, tone, structure" in seq
    assert "Note over f_review: handler meshc.examples.review.{lane}:{lane}" in seq
    assert "a_aggregator->>f_review: XREADGROUP doc.suggestions.{lane} GROUP aggregator" in seq
    assert "f_review-->>a_aggregator: LensResult ×4" in seq


def test_twelve_slots_are_still_one_participant() -> None:
    seq = str(render(_core(SLOTS), "sequence"))
    assert seq.count("participant ") == 6
    assert "participant f_slot as slot ×12" in seq
    assert "f_slot->>f_slot: XREADGROUP s.in.{lane} GROUP slot_{lane}: T" in seq


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_resolution_and_box() -> None:
    core = example_core(REVIEW)
    plain = _png_size(bytes(render(core, "png")))
    sharp = _png_size(bytes(render(core, "png", dpi=192)))
    assert 1.9 <= sharp[0] / plain[0] <= 2.1 and 1.9 <= sharp[1] / plain[1] <= 2.1
    boxed = _png_size(bytes(render(core, "png", size=(600, 600))))
    assert boxed[0] <= 600 and boxed[1] <= 600
    assert boxed[0] >= 590, "scaled to fill the box's width, as the picture is wide"
    assert abs(boxed[0] / boxed[1] - plain[0] / plain[1]) < 0.1, "proportions kept"
    grown = _png_size(bytes(render(core, "png", size=(4000, 4000))))
    assert grown[0] >= 3990, "a box larger than the picture scales it up"


def test_png_options_on_the_command_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    out = f"{tmp_path}/review.png"
    assert main(["render", str(REVIEW), "--format", "png", "-o", out, "--size", "800x400"]) == 0
    with open(out, "rb") as handle:
        width, height = _png_size(handle.read(24))
    assert width <= 800 and height <= 400 and max(width, height / 400 * 800) >= 790
    capsys.readouterr()
    assert main(["render", str(REVIEW), "--format", "svg", "--dpi", "200"]) == 2
    assert "--dpi and --size are for --format png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["render", str(REVIEW), "--format", "png", "-o", out, "--size", "big"])
    assert usage.value.code == 2
    assert "give WIDTHxHEIGHT in pixels" in capsys.readouterr().err
