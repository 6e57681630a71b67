"""Type forms and fingerprints compiled into the topology: what changes them, and
what does not."""

from __future__ import annotations

from pathlib import Path

from meshc.api import analyze_file
from meshc.codegen.context import build_context
from meshc.codegen.fingerprint import digest, stream_forms

MESH = """\
mesh: fp
version: 1
types:
  Item: {x: int, y: str}
  Box: {id: str, items: "list[Item]"}
  Plain: {id: str}
streams:
  s.in: {type: Box}
  s.out: {type: Plain, terminal: true}
agents:
  feed: {role: producer, writes: [s.in]}
  work: {role: specialist, reads: [s.in], writes: [s.out], handler: m:f}
"""


def prints(tmp_path: Path, text: str) -> tuple[dict[str, str], str]:
    path = tmp_path / "fp.yaml"
    path.write_text(text, encoding="utf-8")
    core = analyze_file(str(path)).core
    assert core is not None
    ctx = build_context(core, "fp.yaml", text.encode(), "")
    return {n: digest(f) for n, f in stream_forms(core).items()}, ctx.fingerprint


def test_nested_types_are_part_of_a_streams_fingerprint(tmp_path: Path) -> None:
    base, mesh = prints(tmp_path, MESH)
    assert prints(tmp_path, MESH) == (base, mesh)  # deterministic
    nested, mesh2 = prints(tmp_path, MESH.replace("{x: int, y: str}", "{x: int, y: float}"))
    assert nested["s.in"] != base["s.in"] and nested["s.out"] == base["s.out"]
    assert mesh2 != mesh


def test_type_names_and_field_order_are_not(tmp_path: Path) -> None:
    base, _ = prints(tmp_path, MESH)
    renamed = MESH.replace("Item", "Entry")
    reordered = MESH.replace("{x: int, y: str}", "{y: str, x: int}")
    assert prints(tmp_path, renamed)[0] == base == prints(tmp_path, reordered)[0]


def test_the_mesh_fingerprint_covers_agents(tmp_path: Path) -> None:
    _, mesh = prints(tmp_path, MESH)
    _, handler = prints(tmp_path, MESH.replace("handler: m:f", "handler: m:g"))
    _, policy = prints(tmp_path, MESH.replace("handler: m:f", "handler: m:f, replicas: 2"))
    assert len({mesh, handler, policy}) == 3


def test_a_recursive_type_has_a_form_and_a_fingerprint(tmp_path: Path) -> None:
    recursive = MESH.replace("{x: int, y: str}", '{x: int, y: str, next: "Item | None"}')
    base, _ = prints(tmp_path, recursive)
    renamed, _ = prints(tmp_path, recursive.replace("Item", "Node"))
    assert base == renamed and base != prints(tmp_path, MESH)[0]
