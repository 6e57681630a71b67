"""The loader reads without positions and indexes them on demand: both must agree.

`load_bytes` builds the data in a fast pass that records no position, and reads the
file again with positions the first time a span is asked for (a valid mesh never
asks). These tests hold the two passes to the same data, spans and diagnostics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from corpus import FIXTURES, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc.source import Limits, Source, _read_pass, load_bytes

FILES = sorted(FIXTURES.glob("*.yaml")) + sorted((ROOT / "meshes").glob("*.yaml"))


def with_positions(name: str, raw: bytes) -> Source:
    """One pass with positions, as the loader did before it learned to be lazy."""
    source = Source(name, raw.decode("utf-8"))
    _read_pass(source, Limits(), positions=True)
    return source


def same(lazy: Source, eager: Source) -> None:
    assert lazy.data == eager.data
    assert lazy.diagnostics == eager.diagnostics
    if eager.data is None:
        return  # unreadable (MESH001, MESH004): nothing is checked, no position needed
    lazy.span(())  # index the positions
    assert lazy.spans == eager.spans
    assert lazy.key_spans == eager.key_spans


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_lazy_positions_equal_eager_ones(path: Path) -> None:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: no pass runs")
    if b"max-bytes" in raw:
        pytest.skip("refused before reading")
    same(load_bytes(path.name, raw), with_positions(path.name, raw))


def test_a_valid_file_indexes_nothing_until_asked() -> None:
    raw = (ROOT / "meshes" / "pipeline.yaml").read_bytes()
    source = load_bytes("pipeline.yaml", raw)
    assert source.data["mesh"] == "pipeline" and source.spans == {}
    span = source.key_span(("agents", "normalize"))
    line = raw.decode().splitlines().index("  normalize:") + 1
    assert (span.line, span.column) == (line, 3)
    assert source.spans and source.key_spans


def test_duplicate_keys_are_read_with_positions_at_once() -> None:
    source = load_bytes("dup.yaml", b"mesh: a\nmesh: b\n")
    (diag,) = source.diagnostics
    assert diag.code == "MESH003"
    assert (diag.span.line, diag.related[0].span.line) == (2, 1)
    assert source.data == {"mesh": "b"}


def test_merge_keys_are_not_duplicates() -> None:
    text = b"base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  x: 3\n"
    lazy = load_bytes("merge.yaml", text)
    assert lazy.diagnostics == []
    assert lazy.data["thing"] == {"x": 3, "y": 2}
    same(lazy, with_positions("merge.yaml", text))


keys = st.sampled_from(["mesh", "agents", "a", "b", "reads", "<<", "1", "true"]) | st.text(
    max_size=6
)
trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(trees, st.booleans())
def test_both_passes_agree_on_any_document(tree: Any, flow: bool) -> None:
    text = yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=True).encode("utf-8")
    same(load_bytes("t.yaml", text), with_positions("t.yaml", text))
