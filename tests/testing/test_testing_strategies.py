"""The strategies draw what they promise: valid payloads, invalid near-misses, joins
whose parts share a key, and mesh files that validate and compile cleanly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc.api import analyze_text, load_mesh
from meshc.codegen import compile_analysis
from meshc.runtime.spec import MeshSpec
from meshc.testing.loading import load
from meshc.testing.strategies import (
    NearValid,
    Sizes,
    joined,
    meshes,
    near_valid,
    payloads,
    schema_of,
    values,
)
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted([*ROOT.glob("meshes/*.yaml"), ROOT / "meshes/broken/broken_review.yaml"])
FAST = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MeshSpec]:
    folder = tmp_path_factory.mktemp("build")
    return {p.stem: load(str(p), folder).spec for p in EXAMPLES}


def streams(spec: MeshSpec) -> list[str]:
    return sorted(spec.streams)


def holds(strategy: st.SearchStrategy[Any], prop: Callable[[Any], None]) -> None:
    """Run ``prop`` on drawn values (a fresh @given per call, so loops can use it)."""

    def test(value: Any) -> None:
        prop(value)

    FAST(given(strategy)(test))()


def fits(model: type[BaseModel]) -> Callable[[Any], None]:
    def check(payload: Any) -> None:
        model.model_validate(payload)

    return check


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_payloads_fit_every_stream_model(name: str, specs: dict[str, MeshSpec]) -> None:
    spec = specs[name]
    for stream in streams(spec):
        holds(payloads(spec, stream), fits(spec.streams[stream].model))


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_near_valid_payloads_are_rejected(name: str, specs: dict[str, MeshSpec]) -> None:
    spec = specs[name]
    for stream in streams(spec):
        model = spec.streams[stream].model

        def rejected(bad: NearValid, model: Any = model) -> None:
            with pytest.raises(ValidationError):
                model.model_validate(bad.payload)

        holds(near_valid(spec, stream), rejected)


def test_near_valid_covers_missing_wrong_type_and_extra() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None)
    @given(near_valid(ROOT / "meshes/doc_review.yaml", "doc.suggestions.grammar"))
    def collect(bad: NearValid) -> None:
        seen.add(bad.mutation)

    collect()
    assert seen == {"missing", "wrong_type", "extra"}


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_yaml_and_compiled_forms_give_the_same_types(name: str, specs: dict[str, MeshSpec]) -> None:
    from_yaml = schema_of(load_mesh(str(next(p for p in EXAMPLES if p.stem == name))))
    from_spec = schema_of(specs[name])
    assert from_yaml.streams == from_spec.streams
    assert from_yaml.types == {t: from_yaml.types[t] for t in from_spec.types}


def test_joined_parts_share_the_join_key(specs: dict[str, MeshSpec]) -> None:
    spec = specs["doc_review"]

    @FAST
    @given(joined(spec, "aggregator"))
    def consistent(j: Any) -> None:
        assert set(j.parts) | set(j.missing) == {"grammar", "clarity", "tone", "structure"}
        assert j.parts and not set(j.parts) & set(j.missing)
        for part in j.parts.values():
            assert (part.doc_id, part.chunk_id) == (j.key["doc_id"], j.key["chunk_id"])

    consistent()


def test_recursive_and_nested_types_are_bounded() -> None:
    text = """
mesh: nested
types:
  Node:
    label: str
    next: Node | None
    kids: list[Node]
    tags: dict[str, any]
  Task:
    id: str
    root: Node
    score: float | None
    flags: list[bool]
streams:
  t.in: {type: Task}
  t.out: {type: Task, terminal: true}
agents:
  src: {role: producer, writes: [t.in]}
  work: {role: specialist, reads: [t.in], writes: [t.out], handler: "m.h:f"}
"""
    analysis = analyze_text(text)
    assert analysis.ok and analysis.core is not None

    def depth(node: dict[str, Any] | None) -> int:
        if node is None:
            return 0
        kids = [depth(k) for k in node.get("kids", [])] + [depth(node.get("next"))]
        return 1 + max(kids)

    @FAST
    @given(payloads(analysis.core, "t.in"))
    def bounded(task: dict[str, Any]) -> None:
        assert depth(task["root"]) <= 4

    bounded()


def test_values_of_a_type_expression() -> None:
    @FAST
    @given(values(ROOT / "meshes/doc_review.yaml", "list[Finding]"))
    def findings(items: list[dict[str, Any]]) -> None:
        assert all(set(f) == {"start", "end", "severity", "message", "suggestion"} for f in items)

    findings()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(meshes(as_yaml=True))
def test_drawn_meshes_validate_without_any_diagnostic(text: str) -> None:
    analysis = analyze_text(text, "drawn.yaml")
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    assert analysis.diagnostics == []
    files = compile_analysis(analysis, "drawn.yaml")
    assert "topology.py" in files


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(meshes())
def test_drawn_mesh_dicts_round_trip_through_yaml(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    assert yaml.safe_load(text) == doc
    assert analyze_text(text).ok


def test_unknown_stream_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no stream 'nope'"):
        payloads(ROOT / "meshes/pipeline.yaml", "nope")


def test_sizes_take_keywords_and_bound_what_is_drawn() -> None:
    """``Sizes(text=5)`` sets one bound and keeps the others' defaults."""
    small = Sizes(text=5, items=2)
    assert (small.text, small.items, small.depth) == (5, 2, Sizes().depth)
    with pytest.raises(AttributeError):
        small.text = 6  # type: ignore[misc]
    mesh = analyze_text(
        "mesh: m\nversion: 1\ntypes:\n  T: {id: str, tags: 'list[str]'}\n"
        "streams:\n  a.in: {type: T, terminal: true}\n"
        "agents:\n  p: {role: producer, writes: [a.in]}\n"
    ).core
    assert mesh is not None

    @FAST
    @given(payloads(mesh, "a.in", small))
    def bounded(payload: dict[str, Any]) -> None:
        assert len(payload["id"]) <= 5 and len(payload["tags"]) <= 2
        assert all(len(tag) <= 5 for tag in payload["tags"])

    bounded()
