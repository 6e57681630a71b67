"""schemas/mesh.schema.json is `meshc schema` output, and agrees with the validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from corpus import ROOT, all_cases
from meshc.cli import main
from meshc.commands.schema import schema_text
from meshc.source import load_bytes

SCHEMA_FILE = ROOT / "schemas" / "mesh.schema.json"
EXAMPLES = sorted((ROOT / "meshes").glob("*.yaml"))
REFRESH = "meshc schema -o schemas/mesh.schema.json"

jsonschema = pytest.importorskip("jsonschema")


def _validator() -> Any:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _data(path: Path) -> Any:
    """The data meshc itself reads from the file (YAML 1.2 core scalars)."""
    source = load_bytes(str(path), path.read_bytes())
    assert not source.diagnostics
    return source.data


def test_schema_file_is_fresh(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text()
    stored = SCHEMA_FILE.read_text(encoding="utf-8")
    assert stored == printed, f"{SCHEMA_FILE.name} is stale; refresh it with: {REFRESH}"


def test_schema_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "mesh.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == schema_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_fit_the_json_schema(path: Path) -> None:
    errors = sorted(_validator().iter_errors(_data(path)), key=str)
    assert not errors, "\n".join(e.message for e in errors)


SCHEMA_LEVEL = {"MESH001", "MESH002", "MESH003", "MESH004"}
CLEAN_SHAPE = [c for c in all_cases() if not {k[0] for k in c.expected} & SCHEMA_LEVEL]
# Fixtures whose MESH002 comes from the model itself (not from the expansion of lanes).
MODEL_ERRORS = [
    "mesh002_unknown_key",
    "mesh002_typo_spares_followups",
    "mesh002_missing_fields",
    "mesh002_wrong_types",
    "mesh002_bad_duration",
    "mesh002_bad_handler",
    "mesh002_not_a_mapping",
    "mesh002_broken_agent_spares_followups",
]


@pytest.mark.parametrize("case", CLEAN_SHAPE, ids=lambda c: c.name)
def test_schema_accepts_what_the_model_accepts(case: Any) -> None:
    """Graph and type problems are not the schema's business: those files fit it."""
    errors = list(_validator().iter_errors(_data(case.path)))
    assert not errors, "\n".join(e.message for e in errors)


@pytest.mark.parametrize("name", MODEL_ERRORS)
def test_schema_refuses_what_the_model_refuses(name: str) -> None:
    path = ROOT / "tests" / "validator" / "fixtures" / f"{name}.yaml"
    assert list(_validator().iter_errors(_data(path))), f"{name} fits the JSON Schema"
