"""Type and field names that would break the generated models are refused (MESH211).

Two directions: the set of reserved names is exactly what the generated ``models.py``
binds and its annotations use (read from the code itself, so a template that grows an
import must grow the set), and each refused name really breaks the package: compiled
with the check switched off, the package fails to import under ``-W error`` or its
models do not have the declared fields; a near miss of each name works as declared.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from meshc.api import analyze_text
from meshc.checks import types as type_checks
from meshc.codegen import compile_analysis
from meshc.codegen.writer import write_package
from meshc.typeexpr import MODEL_NAMES

EXPRESSIONS = ["str", "int", "float", "bool", "any", "list[Part]", "dict[str, Part]", "Part | None",
               "list[dict[str, int | None]]"]  # fmt: skip
EVERY_KIND = {f"f{i}": expr for i, expr in enumerate(EXPRESSIONS)}


def _mesh(types: dict[str, dict[str, str]], intake: str) -> str:
    lines = ["mesh: names", "version: 1", "types:"]
    for tname, fields in types.items():
        lines.append(f"  {tname}:")
        lines += [f'    {fname}: "{expr}"' for fname, expr in fields.items()]
    lines += ["streams:", f"  s.in: {{type: {intake}, terminal: true}}", "agents:",
              "  p: {role: producer, writes: [s.in]}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _compiled(tmp_path: Path, text: str) -> Path:
    analysis = analyze_text(text, "names.yaml")
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    write_package(tmp_path / "names", compile_analysis(analysis, "names.yaml"))
    return tmp_path / "names"


# Run in a fresh interpreter with warnings as errors: import the package, then check
# that each model has exactly its declared fields and round-trips a payload built from
# the declared type expressions.
WORKS_AS_DECLARED = """
import json, sys
import names.models as models, names.topology
types = json.loads(sys.argv[1])
def sample(expr):
    expr = expr.strip()
    if expr.endswith("| None"):
        return None
    if expr.startswith("list["):
        return [sample(expr[5:-1])]
    if expr.startswith("dict[str,"):
        return {"k": sample(expr[9:-1])}
    simple = {"str": "s", "int": 1, "float": 1.5, "bool": True, "any": [1]}
    return simple[expr] if expr in simple else {f: sample(e) for f, e in types[expr].items()}
for name, fields in types.items():
    model = getattr(models, name)
    assert set(model.model_fields) == set(fields), (name, set(model.model_fields))
    payload = sample(name)
    assert model.model_validate(payload).model_dump(mode="json") == payload, name
"""


def _works_as_declared(
    tmp_path: Path, types: dict[str, dict[str, str]]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", WORKS_AS_DECLARED, json.dumps(types)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_reserved_names_are_what_the_models_module_binds_and_uses(tmp_path: Path) -> None:
    types = {"Part": {"x": "int"}, "Whole": EVERY_KIND}
    tree = ast.parse((_compiled(tmp_path, _mesh(types, "Whole")) / "models.py").read_text())
    bound = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    nodes = list(ast.walk(tree))
    used = _names(base for node in nodes if isinstance(node, ast.ClassDef) for base in node.bases)
    used |= _names(node.annotation for node in nodes if isinstance(node, ast.AnnAssign))
    used |= _names(node.func for node in nodes if isinstance(node, ast.Call))
    assert bound == {"annotations", "Any", "BaseModel", "ConfigDict"}
    assert bound | (used - set(types) - {"None"}) == set(MODEL_NAMES)


def _names(nodes: Iterable[ast.AST]) -> set[str]:
    return {name.id for node in nodes for name in ast.walk(node) if isinstance(name, ast.Name)}


BREAKING = {  # refused, and why: (types, intake type)
    "type BaseModel": ({"BaseModel": {"x": "int"}, "Part": {"y": "int"}}, "Part"),
    "type ConfigDict": ({"ConfigDict": {"x": "int"}, "Part": {"y": "int"}}, "Part"),
    "type Any": ({"Any": {"x": "int"}, "Part": {"y": "any"}}, "Part"),
    # a model defined after the type (in name order: lowercase `row` after `list`)
    "type list": ({"list": {"x": "int"}, "row": {"y": "list[int]"}}, "row"),
    "type dict": ({"dict": {"x": "int"}, "row": {"y": "dict[str, int]"}}, "row"),
    "field named like a type": ({"Item": {"x": "int"}, "Part": {"Item": "Item | None"}}, "Part"),
    "field str": ({"Part": {"str": "str | None"}}, "Part"),
    "field json": ({"Part": {"json": "str"}}, "Part"),
    "field copy": ({"Part": {"copy": "int"}}, "Part"),
    "field register": ({"Part": {"register": "int"}}, "Part"),
}


@pytest.mark.parametrize("case", BREAKING.values(), ids=BREAKING.keys())
def test_each_refused_name_really_breaks_the_package(
    case: tuple[dict[str, dict[str, str]], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _mesh(*case)
    assert "MESH211" in {d.code for d in analyze_text(text).diagnostics}
    monkeypatch.setattr(type_checks, "check_reserved_names", lambda core, source: iter(()))
    _compiled(tmp_path, text)
    assert _works_as_declared(tmp_path, case[0]).returncode != 0


NEAR_MISSES = {
    "types": ({"Basemodel": {"x": "int"}, "Lists": {"y": "list[Basemodel]"}}, "Lists"),
    "fields": (
        {
            "Item": {"x": "int"},
            "Part": {"item": "Item | None", "json_text": "str", "type": "str", "id": "int"},
        },
        "Part",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_near_misses_validate_and_import_cleanly(
    case: tuple[dict[str, dict[str, str]], str], tmp_path: Path
) -> None:
    _compiled(tmp_path, _mesh(*case))
    done = _works_as_declared(tmp_path, case[0])
    assert done.returncode == 0, done.stderr
