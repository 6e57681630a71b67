"""The rules of docs/compatibility.md, one test per row, each checked two ways:

* the diff's comparison finds exactly the rule the row names;
* the real generated models agree with the row's two verdicts. Both versions of
  the row's type are compiled by ``meshc compile``'s own code; payloads are drawn
  from the writer's type by meshc's strategies, written as a worker writes them
  (``dump_output``) and read as a worker reads them (the model's JSON validator).
  A "yes" needs no drawn payload (60 of them) to fail; a "no" needs hypothesis to
  find one.

The table in docs/compatibility.md must list the same rows with the same verdicts,
so the page cannot drift from the code either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample
from meshc.api import analyze_text
from meshc.codegen.build import build_cached
from meshc.core import CoreMesh
from meshc.diff.payload import RULES, Walk
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import dump_output
from meshc.testing.strategies import payloads
from pydantic import BaseModel, ValidationError

DOC = Path(__file__).parents[2] / "docs" / "compatibility.md"


@dataclass(frozen=True)
class Row:
    """One row: the type of stream ``c.<n>`` before and after, the rule(s) the diff
    names, and the two verdicts (new reader of old entries, old reader of new ones)."""

    n: int
    old: dict[str, dict[str, str]]
    new: dict[str, dict[str, str]]
    rules: tuple[str, ...]
    backward: bool
    forward: bool
    root_new: str = ""


def _t(fields: str) -> dict[str, str]:
    return dict(pair.split(": ", 1) for pair in fields.split("; ")) if fields else {}


ROWS = [
    Row(1, {"T1": _t("a: int")}, {"T1": _t("a: int; b: str | None")},
        ("field-added-optional",), True, False),
    Row(2, {"T2": _t("a: int")}, {"T2": _t("a: int; b: str")},
        ("field-added-required",), False, False),
    Row(3, {"T3": _t("a: int; b: str | None")}, {"T3": _t("a: int")},
        ("field-removed-optional",), False, True),
    Row(4, {"T4": _t("a: int; b: str")}, {"T4": _t("a: int")},
        ("field-removed-required",), False, False),
    Row(5, {"T5": _t("a: int; b: str")}, {"T5": _t("a: int; c: str")},
        ("field-renamed",), False, False),
    Row(6, {"T6": _t("a: int")}, {"T6": _t("a: int | None")}, ("made-optional",), True, False),
    Row(7, {"T7": _t("a: int | None")}, {"T7": _t("a: int")}, ("made-required",), False, True),
    Row(8, {"T8": _t("a: int")}, {"T8": _t("a: float")}, ("widened",), True, False),
    Row(9, {"T9": _t("a: bool")}, {"T9": _t("a: int")}, ("widened",), True, False),
    Row(10, {"T10": _t("a: float")}, {"T10": _t("a: int")}, ("narrowed",), False, True),
    Row(11, {"T11": _t("a: int")}, {"T11": _t("a: bool")}, ("narrowed",), False, True),
    Row(12, {"T12": _t("a: str")}, {"T12": _t("a: any")}, ("to-any",), True, False),
    Row(13, {"T13": _t("a: any")}, {"T13": _t("a: str")}, ("from-any",), False, True),
    Row(14, {"T14": _t("a: str")}, {"T14": _t("a: int")}, ("scalar-changed",), False, False),
    Row(15, {"T15": _t("a: list[str]")}, {"T15": _t("a: dict[str, str]")},
        ("kind-changed",), False, False),
    Row(16, {"T16": _t("a: list[int]")}, {"T16": _t("a: list[float]")}, ("widened",), True, False),
    Row(17, {"T17": _t("a: dict[str, float]")}, {"T17": _t("a: dict[str, int]")},
        ("narrowed",), False, True),
    Row(18, {"T18": _t("a: list[I18]"), "I18": _t("x: int")},
        {"T18": _t("a: list[I18]"), "I18": _t("x: int; y: str")},
        ("field-added-required",), False, False),
    Row(19, {"T19": _t("a: int | None")}, {"T19": _t("a: float | None")},
        ("widened",), True, False),
    Row(20, {"T20": _t("a: int; b: I20"), "I20": _t("x: str")},
        {"T20": _t("a: int; b: J20"), "J20": _t("x: str")}, ("type-renamed",), True, True),
    Row(21, {"T21": _t("a: int; b: str")}, {"T21": _t("b: str; a: int")}, (), True, True),
    Row(22, {"T22": _t("a: int")}, {"U22": _t("a: int")}, ("type-renamed",), True, True,
        root_new="U22"),
]  # fmt: skip


def _mesh(rows: list[Row], side: str) -> str:
    types: dict[str, dict[str, str]] = {}
    streams = []
    for row in rows:
        types.update(getattr(row, side))
        root = row.root_new if side == "new" and row.root_new else f"T{row.n}"
        streams.append(f"  c.r{row.n}: {{type: {root}, terminal: true}}")
    lines = ["types:"]
    for name, fields in types.items():
        body = ", ".join(f"{f}: {_yaml(t)}" for f, t in fields.items())
        lines.append(f"  {name}: {{{body}}}")
    writes = ", ".join(f"c.r{row.n}" for row in rows)
    return "\n".join([
        f"mesh: compat_{side}", *lines, "streams:", *streams,
        "agents:", f"  feed: {{role: producer, writes: [{writes}]}}", "",
    ])  # fmt: skip


def _yaml(expr: str) -> str:
    return f'"{expr}"' if any(c in expr for c in "|,[]") else expr


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CoreMesh, MeshSpec]]:
    folder = tmp_path_factory.mktemp("compat")
    out = {}
    for side in ("old", "new"):
        path = folder / f"{side}.yaml"
        path.write_text(_mesh(ROWS, side), encoding="utf-8")
        analysis = analyze_text(path.read_bytes(), str(path))
        assert analysis.ok and analysis.core is not None, analysis.diagnostics
        out[side] = (analysis.core, build_cached(str(path)).load_spec())
    return out


def _refused(writer: type[BaseModel], reader: type[BaseModel], payload: dict[str, Any]) -> bool:
    """Written by ``writer`` as a worker writes, is it refused by ``reader``?"""
    data = dump_output(writer, payload)
    try:
        reader.__pydantic_validator__.validate_json(data)
    except ValidationError:
        return True
    return False


def _verdict(core: CoreMesh, stream: str, writer: type[BaseModel], reader: type[BaseModel]) -> bool:
    """True when no drawn payload of the writer's type is refused by the reader."""
    quick = settings(
        max_examples=60, phases=[Phase.generate], database=None, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    try:
        find(payloads(core, stream), lambda p: _refused(writer, reader, p), settings=quick)
    except NoSuchExample:
        return True
    return False


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"row{r.n}")
def test_rule(row: Row, compiled: dict[str, tuple[CoreMesh, MeshSpec]]) -> None:
    (old_core, old_spec), (new_core, new_spec) = compiled["old"], compiled["new"]
    stream = f"c.r{row.n}"
    walk = Walk(old_core.types, new_core.types)
    walk.model(old_core.streams[stream].type, new_core.streams[stream].type, ("stream", stream))
    assert tuple(c.rule for c in walk.changes) == row.rules
    for rule in row.rules:
        assert (RULES[rule].backward, RULES[rule].forward) == (row.backward, row.forward)
    old_model, new_model = old_spec.streams[stream].model, new_spec.streams[stream].model
    assert _verdict(old_core, stream, old_model, new_model) is row.backward, "new reads old"
    assert _verdict(new_core, stream, new_model, old_model) is row.forward, "old reads new"


def _page_rows() -> dict[int, tuple[str, bool, bool]]:
    """Rows of the page's table: number | change | example | rule | new reads old |
    old reads new | what the diff says (cells split on unescaped pipes)."""
    table = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 7 and cells[0].isdigit():
            rule = cells[3].strip("`")
            table[int(cells[0])] = (rule, cells[4].startswith("yes"), cells[5].startswith("yes"))
    return table


def test_the_page_lists_every_row_with_its_verdicts() -> None:
    table = _page_rows()
    expected = {r.n: (r.rules[0] if r.rules else "none", r.backward, r.forward) for r in ROWS}
    assert table == expected
    assert {r for row in ROWS for r in row.rules} == set(RULES), "a rule without a row"


def test_rows_are_numbered_as_in_the_page() -> None:
    assert [r.n for r in ROWS] == list(range(1, len(ROWS) + 1))
