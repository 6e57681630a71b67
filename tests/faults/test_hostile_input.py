"""Hostile mesh files: refused quickly, in bounded memory, never with a traceback.

tests/validator already fuzzes ``analyze_text`` with random text, bytes, YAML-ish token
soup, YAML trees and token edits of the examples (each under 2 s), and its fixtures
hold one case per refusal (an alias bomb, nesting past 64 in block and flow style, a
file over a lowered size bound, one non-UTF-8 file). This module extends that:

* the refusals at their real scale, each timed and its peak memory measured with
  tracemalloc: 10^5 brackets in seven syntaxes, alias bombs of several shapes, 70 MB
  at the default 64 MiB bound (bytes and file), non-UTF-8 bytes of every kind with
  the position of the first bad byte;
* the depth bound exactly at its edge, the same in flow and block style;
* hypothesis: byte-level mutations of the example meshes (invalid UTF-8, truncation,
  spliced lines), structural mutations of their YAML trees, and reformatting that
  must not change the compiled mesh; every report keeps the diagnostics' invariants;
* scale: tens of thousands of diagnostics from a small file.

"""

from __future__ import annotations

import gc
import os
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc import codes
from meshc.api import Analysis, analyze_file, analyze_text
from meshc.source import Limits, load_bytes, load_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {p.name: p.read_bytes() for p in sorted((ROOT / "meshes").glob("*.yaml"))}
SECONDS = 2.0  # per input, on a loaded 2-core machine
MB = 1 << 20
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


def measured(raw: bytes | str) -> tuple[Analysis, float, int]:
    """The analysis, its wall time (untraced), and its peak traced allocation (a second
    run under tracemalloc, which slows allocation-heavy code two to three times)."""
    gc.collect()
    start = time.perf_counter()
    analysis = analyze_text(raw)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    try:
        analyze_text(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return analysis, elapsed, peak


def check_invariants(analysis: Analysis, raw: bytes) -> None:
    """What every report must satisfy, whatever the input."""
    diags = analysis.diagnostics
    assert diags == sorted(diags, key=lambda d: d.sort_key()), "sorted by position"
    lines = raw.count(b"\n") + raw.count(b"\r") + 2
    for d in diags:
        assert d.code in codes.REGISTRY, d.code
        assert d.severity in ("error", "warning") and d.message
        assert 1 <= d.span.line <= lines and d.span.column >= 1, (d.code, d.span)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert [d.code for d in diags] == ["MESH001"], "not UTF-8: that alone is reported"
    if analysis.ok:
        assert not any(d.is_error for d in diags)


def _laughs(levels: int, width: int = 10) -> str:
    lines = ["mesh: bomb", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _deep_block(depth: int) -> str:
    return "mesh: m\n" + "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"


def _deep_block_seq(depth: int) -> str:
    return (
        "mesh: m\nx:\n"
        + "".join("  " * (i + 1) + "-\n" for i in range(depth - 1))
        + ("  " * depth + "- v\n")
    )


# -- refusals at scale -------------------------------------------------------------------

NESTING = {
    "flow lists": b"[" * 100_000,
    "flow maps": b"{" * 100_000,
    "flow maps with keys": b"{a: " * 100_000,
    "mixed flow": b"[{" * 50_000,
    "block sequences on one line": b"- " * 100_000 + b"x",
    "explicit keys": b"? " * 100_000 + b"x",
    "tags and flow": b"!!map {" * 20_000,
    "block mappings (2,000 levels)": _deep_block(2_000).encode(),
    "block sequences (2,000 levels)": _deep_block_seq(2_000).encode(),
    "flow inside block": (_deep_block(40) + "  " * 40 + "x: " + "[" * 100_000).encode(),
}


@pytest.mark.parametrize("raw", NESTING.values(), ids=NESTING.keys())
def test_deep_nesting_is_refused_fast_and_small(raw: bytes) -> None:
    analysis, elapsed, peak = measured(raw)
    check_invariants(analysis, raw)
    assert analysis.core is None
    assert {d.code for d in analysis.diagnostics} <= {"MESH004", "MESH001"}
    assert elapsed < SECONDS and peak < 16 * MB, (elapsed, peak)


BOMBS = {
    "billion laughs (10^9)": _laughs(9),
    "ten billion laughs": _laughs(10),
    "one wide anchor, many aliases": "mesh: m\na: &a [" + ", ".join(["x"] * 100_000) + "]\n"
    "b: [" + ", ".join(["*a"] * 100) + "]\n",
    "aliases as keys": _laughs(7) + "k: {? *l6 : 1, ? [*l6, *l6] : 2}\n",
    "bomb under a real mesh key": "mesh: m\nversion: 1\ntypes:\n"
    + "".join(f"  {line}\n" for line in _laughs(9).splitlines()[1:]),
}


@pytest.mark.parametrize("text", BOMBS.values(), ids=BOMBS.keys())
def test_alias_bombs_are_refused_before_they_expand(text: str) -> None:
    analysis, elapsed, peak = measured(text)
    check_invariants(analysis, text.encode())
    assert [d.code for d in analysis.diagnostics if d.is_error][:1] in (["MESH004"], ["MESH001"])
    assert any(d.code == "MESH004" for d in analysis.diagnostics)
    assert elapsed < SECONDS and peak < 16 * MB, (elapsed, peak)


def test_merge_key_fan_in_stays_small() -> None:
    """``<<`` merges re-use a mapping many times; the result is one small mapping."""
    text = "mesh: m\nbase: &b {" + ", ".join(f"k{i}: {i}" for i in range(100)) + "}\n"
    text += "".join(f"m{j}: {{<<: [{', '.join(['*b'] * 50)}]}}\n" for j in range(200))
    analysis, elapsed, peak = measured(text)
    check_invariants(analysis, text.encode())
    assert elapsed < SECONDS and peak < 32 * MB, (elapsed, peak)


def test_seventy_megabytes_are_refused_without_being_read() -> None:
    raw = b"mesh: m\ndescription: " + b"x" * (70 * MB)
    analysis, elapsed, peak = measured(raw)
    assert [d.code for d in analysis.diagnostics] == ["MESH004"]
    assert "the limit is 67,108,864" in analysis.diagnostics[0].message
    assert elapsed < 0.5 and peak < 1 * MB, (elapsed, peak)


def test_a_seventy_megabyte_file_is_refused_from_its_size_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as out:
        out.write(b"mesh: m\n")
        out.truncate(70 * MB)  # a sparse file: 70 MB of NUL bytes after the first line
    gc.collect()
    tracemalloc.start()
    try:
        analysis = analyze_file(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [diag] = analysis.diagnostics
    assert diag.code == "MESH004" and f"the file is {70 * MB:,} bytes" in diag.message
    assert "alias" not in diag.help and "--max-bytes" in diag.help
    assert peak < MB, peak  # not one block of the file was read


def test_a_pipe_is_read_up_to_the_bound_only() -> None:
    """A pipe has no size to look at: it is read, but never past the bound."""
    read, write = os.pipe()
    with os.fdopen(write, "wb") as out:
        out.write(b"mesh: m\ndescription: " + b"x" * 2_000)
    try:
        source = load_file(f"/dev/fd/{read}", Limits(max_bytes=1_000))
    finally:
        os.close(read)
    [diag] = source.diagnostics
    assert diag.code == "MESH004" and "more than 1,001 bytes" in diag.message


REFUSALS = {  # each kind of refusal says what it is and how to fix that, not another
    "size": (b"mesh: m\n" + b"#" * 200, Limits(max_bytes=100), "bytes", "--max-bytes"),
    "depth": (_deep_block(10).encode(), Limits(max_depth=5), "nesting deeper", "flatten"),
    "nodes": (
        ("mesh: m\nx: [" + ", ".join(["1"] * 200) + "]\n").encode(),
        Limits(max_nodes=100),
        "the file holds more than 100 YAML nodes",
        "split the mesh",
    ),
    "aliases": (_laughs(4).encode(), Limits(max_nodes=100), "aliases expand", "`*name`"),
}


@pytest.mark.parametrize("raw, limits, said, fix", REFUSALS.values(), ids=REFUSALS.keys())
def test_each_refusal_has_its_own_message_and_help(
    raw: bytes, limits: Limits, said: str, fix: str
) -> None:
    [diag] = load_bytes("r.yaml", raw, limits).diagnostics
    assert diag.code == "MESH004" and said in diag.message, diag.message
    assert fix in diag.help, diag.help
    others = {kind: words for kind, (_, _, _, words) in REFUSALS.items() if words != fix}
    assert not [kind for kind, words in others.items() if words in diag.help], diag.help


ITEMS = 200_000
DENSE = {  # under every bound, but dense: reported with MESH002
    "ints under a mesh key": "mesh: m\nversion: 1\nx: [" + ", ".join(["1"] * ITEMS) + "]\n",
    "short strings as the root": "[" + ", ".join(["ab"] * ITEMS) + "]\n",
}


@pytest.mark.parametrize("text", DENSE.values(), ids=DENSE.keys())
def test_a_dense_list_is_reported_in_bounded_memory(text: str) -> None:
    """Where an item is costs 16 bytes (compact arrays), not a dict entry of a path
    tuple (these files took 40 MB that way, a 9.8 MB one 0.7 GB), and the root's
    span needs no index at all."""
    gc.collect()
    tracemalloc.start()
    try:
        analysis = analyze_text(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.code for d in analysis.diagnostics] == ["MESH002"]
    assert peak < 16 * MB, peak


NOT_UTF8 = {  # bytes, (line, column) of the first bad byte
    "latin-1 in a value": (b"mesh: m\nversion: 1\ndescription: caf\xe9\n", (3, 17)),
    "invalid start byte": (b"\xff\xfemesh: m\n", (1, 1)),
    "overlong slash": (b"mesh: m\nx: \xc0\xaf\n", (2, 4)),
    "utf-16 surrogate": (b"mesh: m\nx: a\xed\xa0\x80\n", (2, 5)),
    "truncated at the end": (b"mesh: m\nx: \xe2\x82", (2, 4)),
    "continuation alone": (b"mesh: m\n\x80\n", (2, 1)),
    "beyond U+10FFFF": (b"mesh: m\nx: \xf4\x90\x80\x80\n", (2, 4)),
    "utf-16 with its BOM": ("mesh: m\n".encode("utf-16"), (1, 1)),
    "after 10,000 good lines": (b"mesh: m\n" + b"# ok\n" * 10_000 + b"x: \xfe\n", (10_002, 4)),
}


@pytest.mark.parametrize("raw, where", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_non_utf8_is_mesh001_at_the_first_bad_byte(raw: bytes, where: tuple[int, int]) -> None:
    analysis, elapsed, peak = measured(raw)
    check_invariants(analysis, raw)
    [diag] = analysis.diagnostics
    assert diag.code == "MESH001" and "not UTF-8" in diag.message
    assert (diag.span.line, diag.span.column) == where
    assert elapsed < 0.5 and peak < 4 * MB


CONTROL = {  # valid UTF-8 that YAML refuses: where the character is
    "NUL in a value": (b"mesh: m\nversion: 1\ndescription: a\x00b\n", (3, 15)),
    "ESC after 500 lines": (b"mesh: m\n" + b"# ok\n" * 500 + b"x: \x1b\n", (502, 4)),
    "utf-32 text (NUL bytes)": ("mesh: m\n".encode("utf-32-le"), (1, 2)),
}


@pytest.mark.parametrize("raw", [raw for raw, _ in CONTROL.values()], ids=CONTROL.keys())
def test_control_characters_are_mesh001(raw: bytes) -> None:
    analysis, elapsed, peak = measured(raw)
    check_invariants(analysis, raw)
    assert [d.code for d in analysis.diagnostics] == ["MESH001"]
    assert elapsed < 0.5 and peak < 4 * MB


@pytest.mark.parametrize("raw, where", CONTROL.values(), ids=CONTROL.keys())
def test_control_characters_are_reported_where_they_are(raw: bytes, where: tuple[int, int]) -> None:
    [diag] = analyze_text(raw).diagnostics
    assert (diag.span.line, diag.span.column) == where


def test_text_with_a_lone_surrogate_is_mesh001() -> None:
    analysis = analyze_text("mesh: m\nx: \udcff\n")
    assert [d.code for d in analysis.diagnostics] == ["MESH001"]


# -- the depth bound at its edge ----------------------------------------------------------

STYLES: dict[str, Callable[[int], str]] = {  # text whose containers nest n deep (root included)
    "flow lists": lambda n: "mesh: m\nx: " + "[" * (n - 1) + "]" * (n - 1) + "\n",
    "flow maps": lambda n: "mesh: m\nx: " + "{a: " * (n - 1) + "1" + "}" * (n - 1) + "\n",
    "block maps": lambda n: _deep_block(n),
    "block sequences": lambda n: _deep_block_seq(n - 1),
}


@pytest.mark.parametrize("style", STYLES.values(), ids=STYLES.keys())
def test_depth_bound_is_exact_and_the_same_in_every_style(style: Callable[[int], str]) -> None:
    bound = Limits().max_depth
    for depth in range(bound - 3, bound + 4):
        analysis = analyze_text(style(depth))
        refused = any(d.code == "MESH004" for d in analysis.diagnostics)
        assert refused == (depth > bound), (depth, [d.code for d in analysis.diagnostics])


# -- hypothesis: mutated and reformatted examples -----------------------------------------

BAD_BYTES = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\x00", b"\x1b"]
SPLICES = [b"", b"\n", b"  ", b"\t", b"\r", b"\r\n", b": ", b"- ", b"[", b"]", b"{", b"}",
           b"&a ", b"*a", b"<<: ", b"? ", b"!!str ", b"'", b'"', b"#", b"---\n", b"\xef\xbb\xbf",
           *BAD_BYTES]  # fmt: skip


@st.composite
def byte_mutants(draw: st.DrawFn) -> bytes:
    raw = bytearray(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "splice", "cut", "truncate", "repeat-lines"]))
        i = draw(st.integers(0, len(raw)))
        if kind == "flip" and i < len(raw):
            raw[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "splice":
            raw[i:i] = draw(st.sampled_from(SPLICES))
        elif kind == "cut":
            del raw[i : i + draw(st.integers(1, 200))]
        elif kind == "truncate":
            del raw[i:]
        else:
            lines = bytes(raw).splitlines(keepends=True)
            j = draw(st.integers(0, max(0, len(lines) - 1)))
            k = draw(st.integers(j, min(len(lines), j + 8)))
            raw = bytearray(b"".join(lines[:k] + lines[j:k] + lines[k:]))
    return bytes(raw)


@FUZZ
@given(byte_mutants())
def test_byte_mutations_of_the_examples(raw: bytes) -> None:
    start = time.perf_counter()
    analysis = analyze_text(raw)
    assert time.perf_counter() - start < SECONDS
    check_invariants(analysis, raw)


def _tree(name: str) -> Any:
    """An example as plain data, read by meshc's own loader (YAML 1.2: `on` is a string)."""
    return load_bytes(name, EXAMPLES[name]).data


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


WORDS = ["fanout", "merge", "llm", "producer", "aggregator", "doc.review.tasks",
         "@review.input", "list[Finding]", "{lane}", "30s", "-1ms", "a.b:c"]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(WORDS)
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12,
)


@st.composite
def tree_mutants(draw: st.DrawFn) -> str:
    tree = _tree(draw(st.sampled_from(sorted(EXAMPLES))))
    for _ in range(draw(st.integers(1, 5))):
        path = draw(st.sampled_from(_paths(tree)))
        if not path:
            continue
        parent = tree
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["delete", "replace", "rename", "duplicate", "add"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(values)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(last)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(last, parent[last])
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(values)
    return yaml.safe_dump(
        tree,
        default_flow_style=draw(st.sampled_from([False, True, None])),
        sort_keys=draw(st.booleans()),
        allow_unicode=draw(st.booleans()),
        width=draw(st.integers(20, 200)),
    )


@FUZZ
@given(tree_mutants())
def test_structural_mutations_of_the_examples(text: str) -> None:
    start = time.perf_counter()
    analysis = analyze_text(text)
    assert time.perf_counter() - start < SECONDS
    check_invariants(analysis, text.encode())


@FUZZ
@given(
    name=st.sampled_from(sorted(EXAMPLES)),
    flow=st.sampled_from([False, True, None]),
    indent=st.integers(2, 8),
    width=st.integers(30, 300),
    start=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    comment=st.booleans(),
)
def test_reformatting_an_example_compiles_to_the_same_mesh(
    name: str, flow: bool | None, indent: int, width: int, start: bool, newline: str,
    bom: bool, comment: bool,
) -> None:  # fmt: skip
    text = yaml.safe_dump(
        _tree(name), default_flow_style=flow, indent=indent, width=width,
        explicit_start=start, explicit_end=start, allow_unicode=True, sort_keys=False,
    )  # fmt: skip
    if comment:  # on top-level plain scalars only: anywhere else it may be scalar text
        text = "# reformatted\n" + re.sub(r"(?m)^([a-z_]+: [\w.]+)$", r"\1  # note", text)
    raw = ("\ufeff" if bom else "").encode() + text.replace("\n", newline).encode()
    original, reformatted = analyze_text(EXAMPLES[name]), analyze_text(raw)
    assert reformatted.diagnostics == [] and reformatted.core == original.core


# -- many diagnostics from a small file ----------------------------------------------------

HEAD = "mesh: m\nversion: 1\ntypes:\n  T:\n    x: int\n"


def _writers(n: int) -> str:
    agents = "".join(f"  a{i}:\n    role: producer\n    writes: [s]\n" for i in range(n))
    return HEAD + "streams:\n  s:\n    type: T\n    terminal: true\nagents:\n" + agents


def _cycle(n: int) -> str:
    streams = "".join(f"  s{i}:\n    type: T\n" for i in range(n))
    agents = "".join(
        f"  a{i}:\n    role: specialist\n    reads: [s{i}]\n    writes: [s{(i + 1) % n}]\n"
        "    handler: m.h:f\n"
        for i in range(n)
    )
    return HEAD + "streams:\n" + streams + "agents:\n" + agents


MANY = {
    "3,000 producers of one stream": _writers(3000),
    "a 2,000-agent cycle": _cycle(2000),
    "10,000 duplicate keys": "mesh: m\n" + "a: 1\n" * 10_000,
    "5,000 badly named streams": HEAD
    + "streams:\n"
    + "".join(f"  'S {i}':\n    type: T\n" for i in range(5000)),
}


@pytest.mark.parametrize("text", MANY.values(), ids=MANY.keys())
def test_thousands_of_diagnostics_in_bounded_time(text: str) -> None:
    start = time.perf_counter()
    analysis = analyze_text(text)
    assert time.perf_counter() - start < SECONDS
    assert len(analysis.diagnostics) >= 1 and not analysis.ok


def test_ten_thousand_unknown_keys_in_bounded_time() -> None:
    text = (
        HEAD
        + "agents:\n  p:\n    role: producer\n"
        + "".join(f"    k{i}: 1\n" for i in range(10_000))
    )
    start = time.perf_counter()
    analysis = analyze_text(text)
    assert time.perf_counter() - start < SECONDS
    assert sum(d.code == "MESH002" for d in analysis.diagnostics) == 10_000


def test_deeply_nested_type_expression_is_a_diagnostic() -> None:
    text = "mesh: m\nversion: 1\ntypes:\n  T:\n    x: " + "list[" * 400 + "int" + "]" * 400 + "\n"
    analysis = analyze_text(text)
    assert any(d.code in ("MESH202", "MESH004") for d in analysis.diagnostics)
