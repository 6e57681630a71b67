"""The fixture corpus: every scenario's diagnostics are exactly those its comments expect.

Each file in tests/validator/fixtures is run through ``analyze_file`` and through the
command line (``meshc validate --format json``); both must report exactly the
multiset of (code, line, severity) written in the file, and the exit code must follow
from it: 1 with an error, 0 with warnings only (1 under ``--strict``), 0 when clean.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import FIXTURES, Case, actual, actual_json, all_cases, mismatch
from meshc import codes
from meshc.api import analyze_file
from meshc.cli import main
from meshc.source import Limits

CASES = all_cases()


def _ids(case: Case) -> str:
    return case.name


@pytest.fixture
def at_fixtures(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the fixtures folder, where the `handlers` package is importable."""
    monkeypatch.chdir(FIXTURES)
    return FIXTURES


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_analyze_file_reports_exactly_the_expected(case: Case, at_fixtures: Path) -> None:
    limits = Limits(max_bytes=case.max_bytes) if case.max_bytes else None
    analysis = analyze_file(str(case.path), resolve=case.resolve, limits=limits)
    assert actual(analysis.diagnostics) == case.expected, mismatch(case, analysis.diagnostics)
    assert analysis.ok == (not case.has_errors)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_cli_json_and_exit_code(
    case: Case, at_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*case.cli_args(), "--format", "json"])
    out = capsys.readouterr().out
    report = json.loads(out)  # user code printing on import must not spoil stdout
    assert actual_json(report) == sorted(case.expected.elements())
    assert report["files"] == [str(case.path)]
    assert code == (1 if case.has_errors else 0)


WARNING_ONLY = [c for c in CASES if c.expected and not c.has_errors]


@pytest.mark.parametrize("case", WARNING_ONLY, ids=_ids)
def test_strict_makes_warnings_fail(
    case: Case, at_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(case.cli_args()) == 0
    assert main([*case.cli_args(), "--strict"]) == 1
    capsys.readouterr()


def test_corpus_covers_every_code() -> None:
    covered = {code for case in CASES for code, _, _ in case.expected}
    missing = sorted(set(codes.REGISTRY) - covered)
    assert not missing, f"no fixture in {FIXTURES} expects {', '.join(missing)}"


def test_corpus_size_and_shape() -> None:
    broken = [c for c in CASES if c.expected]
    assert len(broken) >= 40
    assert WARNING_ONLY, "the corpus needs warning-only scenarios for the exit-code rule"
    assert any(not c.expected for c in CASES), "and at least one clean scenario"
    for case in CASES:  # fixture names say which code they are about
        head = case.name.split("_")[0]
        if head.startswith("mesh"):
            assert any(code.lower() == head for code, _, _ in case.expected), case.name


def test_every_mesh3xx_fixture_is_resolved() -> None:
    for case in CASES:
        if any(code.startswith("MESH3") for code, _, _ in case.expected):
            assert case.resolve, f"{case.name} needs a `# resolve: true` header"


def test_non_utf8_fixture_really_is_not_utf8() -> None:
    raw = (FIXTURES / "mesh001_not_utf8.yaml").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
