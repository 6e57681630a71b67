"""What `meshc validate` prints and returns: text, JSON, SARIF, --explain, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from corpus import FIXTURES, ROOT
from meshc import codes
from meshc.api import analyze_file
from meshc.cli import main

EXAMPLES = sorted((ROOT / "meshes").glob("*.yaml"))
TWO_WRITERS = FIXTURES / "mesh103_two_writers.yaml"
WARNINGS = FIXTURES / "mesh106_unread.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- text


def test_text_has_position_line_caret_note_and_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "validate", str(TWO_WRITERS))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"{TWO_WRITERS}:24:14: error: stream `results` has 2 writers: `left`, `right` [MESH103]"
    )
    assert lines[1] == " 24 |     writes: [results]  # E: MESH103"
    assert lines[2] == "    |              ^~~~~~~"
    assert lines[3] == f"  note: {TWO_WRITERS}:19:14: `left` also writes `results` here"
    assert lines[4].startswith("  help: give each writer its own stream")
    assert "`results.left`, `results.right`" in lines[4]
    assert err.strip() == "1 error, 0 warnings in 1 file"


def test_text_columns_count_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mesh = tmp_path / "wide.yaml"
    mesh.write_text(
        "mesh: wide\ntypes:\n  Doc: {id: str}\nstreams:\n  s: {type: Doc, terminal: true}\n"
        'agents:\n  p: {role: producer, writes: ["é😀", s]}\n',
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", str(mesh))
    assert code == 1
    head, source, caret = out.splitlines()[:3]
    assert head.startswith(f"{mesh}:7:32: error: agent `p` writes undeclared stream `é😀`")
    assert source == ' 7 |   p: {role: producer, writes: ["é😀", s]}'
    assert caret == "   |" + " " * 32 + "^~~~"  # under the 4 characters of "é😀"


def test_text_color_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    _, plain, _ = run(capsys, "validate", str(TWO_WRITERS))
    _, colored, _ = run(capsys, "validate", "--color", "always", str(TWO_WRITERS))
    assert "\x1b[" not in plain  # captured output is no terminal: no escapes by default
    assert "\x1b[1;31merror:" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain


def test_text_of_a_clean_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", *map(str, EXAMPLES))
    assert (code, out) == (0, "")
    assert err.strip() == f"{len(EXAMPLES)} files valid"


def test_diagnostics_are_sorted_by_position() -> None:
    diags = analyze_file(str(FIXTURES / "many_problems.yaml")).diagnostics
    keys = [(d.span.line, d.span.column) for d in diags]
    assert keys == sorted(keys)
    assert len({d.code for d in diags}) >= 8


# ----------------------------------------------------------------------------- JSON

DIAGNOSTIC_KEYS = {
    "code",
    "severity",
    "message",
    "file",
    "line",
    "column",
    "end_line",
    "end_column",
    "help",
    "related",
}


def test_json_shape_is_exactly_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--format", "json", str(TWO_WRITERS), str(WARNINGS))
    assert code == 1
    report = json.loads(out)
    assert set(report) == {"files", "diagnostics"}
    assert report["files"] == [str(TWO_WRITERS), str(WARNINGS)]
    assert report["diagnostics"]
    for d in report["diagnostics"]:
        assert set(d) == DIAGNOSTIC_KEYS
        assert d["severity"] in ("error", "warning")
        assert d["code"] in codes.REGISTRY
        for key in ("line", "column", "end_line", "end_column"):
            assert isinstance(d[key], int) and d[key] >= 1
        assert (d["end_line"], d["end_column"]) >= (d["line"], d["column"])
        assert d["file"] in report["files"]
        assert isinstance(d["message"], str) and isinstance(d["help"], str) and d["help"]
        for r in d["related"]:
            assert set(r) == {"file", "line", "column", "message"}
    first = report["diagnostics"][0]
    assert first["code"] == "MESH103"
    assert "`left`" in first["message"] and "`right`" in first["message"]
    assert first["related"] == [
        {
            "file": str(TWO_WRITERS),
            "line": 19,
            "column": 14,
            "message": "`left` also writes `results` here",
        }
    ]


def test_json_of_a_clean_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--format", "json", str(EXAMPLES[0]))
    assert code == 0
    assert json.loads(out) == {"files": [str(EXAMPLES[0])], "diagnostics": []}


# ----------------------------------------------------------------------------- SARIF

# The fields of SARIF 2.1.0 that code-scanning tools require of a report like ours.
SARIF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "shortDescription"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "shortDescription": {"$ref": "#/$defs/message"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {"type": "array", "items": {"$ref": "#/$defs/result"}},
                },
            },
        },
    },
    "$defs": {
        "message": {
            "type": "object",
            "required": ["text"],
            "properties": {"text": {"type": "string"}},
        },
        "location": {
            "type": "object",
            "required": ["physicalLocation"],
            "properties": {
                "physicalLocation": {
                    "type": "object",
                    "required": ["artifactLocation", "region"],
                    "properties": {
                        "artifactLocation": {
                            "type": "object",
                            "required": ["uri"],
                            "properties": {"uri": {"type": "string"}},
                        },
                        "region": {
                            "type": "object",
                            "required": ["startLine", "startColumn"],
                            "properties": {
                                "startLine": {"type": "integer", "minimum": 1},
                                "startColumn": {"type": "integer", "minimum": 1},
                                "endLine": {"type": "integer", "minimum": 1},
                                "endColumn": {"type": "integer", "minimum": 1},
                            },
                        },
                    },
                }
            },
        },
        "result": {
            "type": "object",
            "required": ["ruleId", "level", "message", "locations"],
            "properties": {
                "ruleId": {"type": "string"},
                "ruleIndex": {"type": "integer", "minimum": 0},
                "level": {"enum": ["none", "note", "warning", "error"]},
                "message": {"$ref": "#/$defs/message"},
                "locations": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/location"},
                },
                "relatedLocations": {"type": "array", "items": {"$ref": "#/$defs/location"}},
            },
        },
    },
}


def _sarif(capsys: pytest.CaptureFixture[str], *files: Path) -> dict[str, Any]:
    run(capsys, "validate", "--format", "sarif", *map(str, files))
    report: dict[str, Any] = json.loads(capsys.readouterr().out or "null") or {}
    return report


def test_sarif_structure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--format", "sarif", str(TWO_WRITERS), str(WARNINGS))
    assert code == 1
    report = json.loads(out)
    assert report["version"] == "2.1.0"
    assert "sarif-2.1.0" in report["$schema"]
    (sarif_run,) = report["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "meshc"
    rules = driver["rules"]
    assert [r["id"] for r in rules] == list(codes.REGISTRY)
    results = sarif_run["results"]
    assert [r["ruleId"] for r in results] == ["MESH103", "MESH106", "MESH106"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        expected = codes.REGISTRY[result["ruleId"]].severity
        assert result["level"] == expected
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert "help:" in result["message"]["text"]
    assert results[0]["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 19


def test_sarif_validates_against_the_required_fields(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for files in ([TWO_WRITERS, WARNINGS], [FIXTURES / "many_problems.yaml"], [EXAMPLES[0]]):
        code, out, _ = run(capsys, "validate", "--format", "sarif", *map(str, files))
        jsonschema.Draft202012Validator(SARIF_SCHEMA).validate(json.loads(out))


# ----------------------------------------------------------------------------- --explain


@pytest.mark.parametrize("code", sorted(codes.REGISTRY))
def test_explain_every_code(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "validate", "--explain", code.lower())
    entry = codes.REGISTRY[code]
    assert status == 0
    assert out.startswith(f"{code} ({entry.severity}): {entry.title}\n")
    assert entry.explain in out
    assert len(entry.explain) > 60  # says what it means and how to fix it


def test_explain_unknown_code(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "validate", "--explain", "MESH999")
    assert (status, out) == (2, "")
    assert "unknown code 'MESH999'" in err and "MESH101" in err


# ----------------------------------------------------------------------------- exit codes


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    status, _, err = run(capsys, "validate", str(missing))
    assert status == 2
    assert f"{missing}: error: cannot open" in err


def test_a_folder_is_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "validate", str(tmp_path))
    assert status == 2 and "cannot open" in err


def test_no_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "validate")
    assert status == 2 and "give at least one FILE" in err


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--format", "xml", str(TWO_WRITERS)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ([EXAMPLES[0], WARNINGS], 0),
        ([EXAMPLES[0], TWO_WRITERS], 1),
        ([WARNINGS, TWO_WRITERS, EXAMPLES[0]], 1),
        ([TWO_WRITERS, Path("/nonexistent/mesh.yaml")], 2),
        ([Path("/nonexistent/mesh.yaml"), EXAMPLES[0]], 2),
    ],
)
def test_several_files_exit_with_the_highest_code(
    files: list[Path], expected: int, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "validate", "--format", "json", *map(str, files))
    assert status == expected
    report = json.loads(out)
    assert report["files"] == [str(f) for f in files if f.exists()]


def test_strict_counts_warnings_across_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "validate", "--strict", str(EXAMPLES[0]), str(WARNINGS))[0] == 1
    assert run(capsys, "validate", "--strict", *map(str, EXAMPLES))[0] == 0


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_meshes_validate_clean(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert analyze_file(str(path)).diagnostics == []
    monkeypatch.chdir(ROOT)  # their handlers live in the `meshes` package
    resolved = analyze_file(str(path), resolve=True)
    assert resolved.diagnostics == [], [d.message for d in resolved.diagnostics]
    assert resolved.ok


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"doc_review.yaml", "qa_slots.yaml", "pipeline.yaml"}
