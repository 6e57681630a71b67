"""The loader reads without positions and indexes them on demand: both must agree.

`load_bytes` builds the data in a fast pass that records no position, and reads the
file again with positions the first time a span is asked for (a valid mesh never
asks). These tests hold the two passes to the same data, spans and diagnostics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from corpus import FIXTURES, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc.source import Limits, Source, load_bytes
from meshc.source.events import plain_scalar
from meshc.source.fast import read_common
from meshc.source.general import read_pass
from meshc.source.text import NeedPositions

FILES = sorted(FIXTURES.glob("*.yaml")) + sorted((ROOT / "meshes").glob("*.yaml"))


def with_positions(name: str, raw: bytes) -> Source:
    """One pass with positions, as the loader did before it learned to be lazy."""
    source = Source(name, raw.decode("utf-8"))
    read_pass(source, Limits(), positions=True)
    return source


def same(lazy: Source, eager: Source) -> None:
    assert lazy.data == eager.data
    assert lazy.diagnostics == eager.diagnostics
    if eager.data is None:
        return  # unreadable (MESH001, MESH004): nothing is checked, no position needed
    root, eager_root = lazy.span(()), eager.span(())  # the root's start needs no index
    assert (root.line, root.column) == (eager_root.line, eager_root.column)
    lazy._indexed()  # index the positions (meshc.source.positions), as the first span asked does
    indexed, reference = lazy.positions, eager.positions
    assert {p: indexed.value(p) for p in reference.values} == reference.values
    assert indexed.keys == reference.keys
    listed = sum(len(starts) for starts, _ in indexed.items.values())
    assert len(indexed.values) + listed == len(reference.values)  # and nothing else


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
    assert source.data["mesh"] == "pipeline" and source.positions.values == {}
    assert source.span(()).line == 2  # the root, after the schema comment: no index
    assert source.positions.values == {}
    span = source.key_span(("agents", "normalize"))
    line = raw.decode().splitlines().index("  normalize:") + 1
    assert (span.line, span.column) == (line, 3)
    assert source.positions.values and source.positions.keys


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


def reference(text: str) -> Source | None:
    """The general reader, which every file used to go through; None where it asks
    for a second pass with positions (a duplicate key)."""
    source = Source("t.yaml", text)
    try:
        read_pass(source, Limits(max_depth=8, max_nodes=40), positions=False)
    except NeedPositions:
        return None
    return source


def agrees_with_reference(text: str) -> bool:
    """Whether the common-case reader took the file; if so, its outcome is the reference's."""
    fast = Source("t.yaml", text)
    try:
        took = read_common(fast, Limits(max_depth=8, max_nodes=40))
    except NeedPositions:
        assert reference(text) is None
        return True
    if took:
        slow = reference(text)
        assert slow is not None and slow.diagnostics == []
        assert repr(fast.data) == repr(slow.data)  # repr: NaN != NaN
    return took


yaml_bits = st.sampled_from(
    [
        "a",
        "b",
        ": ",
        ":",
        "- ",
        "-",
        "\n",
        "  ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "'x'",
        '"y"',
        "#c",
        "~",
        "null",
        "true",
        "False",
        "1",
        "0x1F",
        "012",
        "1_0",
        ".5",
        "1e3",
        ".inf",
        ".NaN",
        "&k ",
        "*k",
        "!!str ",
        "! ",
        "<<",
        "? ",
        "---\n",
        "...\n",
        "|\n  t",
        ">\n  t",
        "\t",
        "\x07",
        "é",
        "a: b\n",
        "- a\n",
        "a:\n  - b\n",
    ]
)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(yaml_bits, max_size=24).map("".join))
def test_common_case_reader_never_differs_from_the_general_one(text: str) -> None:
    agrees_with_reference(text)


@pytest.mark.parametrize(
    ("text", "took"),
    [
        ("mesh: a\nagents: {x: [1, 2]}\n", True),
        ("", True),  # no document at all: the data is None
        ("# only a comment\n---\n", True),  # an explicit start, an empty document
        ("a:\nb: ''\n", True),  # an empty plain scalar is null, an empty quoted one text
        ("a: |\n  t\nb: >\n  u\nc: 'q'\nd: \"r\"\n", True),  # block and quoted scalars
        ("a: &x 1\nb: *x\n", False),  # anchors and aliases
        ("a: &x [1]\n", False),  # an anchor alone, on a collection
        ("a: !!str 1\n", False),  # tags
        ("a: ! 1\n", False),  # even the non-specific one
        ("base: &b {x: 1}\nc:\n  <<: *b\n", False),  # merge keys
        ("a: 1\n---\nb: 2\n", False),  # a second document
        ("? [a]\n: b\n", False),  # a collection as a key
        ("a: [1,\n", False),  # a syntax error, reported by the general reader
        ("a: " + "[" * 9 + "]" * 9, False),  # deeper than the bound
        ("[" + ", ".join(["1"] * 41) + "]", False),  # more nodes than the bound
        ("a: 1\na: 2\n", True),  # a duplicate: read again with positions
    ],
)
def test_common_case_reader_gives_up_on_what_it_leaves_to_the_general_one(
    text: str, took: bool
) -> None:
    assert agrees_with_reference(text) is took


def core_schema(value: str) -> Any:
    """The YAML 1.2 core schema, resolved plainly (no fast paths), as the loader means it."""
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?(0|[1-9][0-9_]*)", value):
        return int(value.replace("_", ""))
    if re.fullmatch(r"0o[0-7]+|0x[0-9a-fA-F]+", value):
        return int(value, 0)
    float_form = r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?"
    if re.fullmatch(float_form, value) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    if value.lower() in (".inf", "+.inf"):
        return float("inf")
    if value.lower() == "-.inf":
        return float("-inf")
    if value.lower() == ".nan":
        return float("nan")
    return value


@settings(max_examples=1000, deadline=None, database=None)
@given(
    st.text(alphabet="0123456789+-._eEoxXabfnNtTrRuUlLsSiI~ ", max_size=7)
    | st.sampled_from(["type", "terminal", "note", "Null", "NaN", ".NaN", "-.Inf", "0x1F"])
)
def test_plain_scalars_follow_the_core_schema(value: str) -> None:
    assert repr(plain_scalar(value)) == repr(core_schema(value))  # repr: NaN != NaN
