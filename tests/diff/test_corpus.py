"""The diff corpus: each folder of tests/diff/corpus holds two versions of a mesh
(``old.yaml``, ``new.yaml``) and, beside them, ``expected.json``: what the diff must
find with no server read (every finding as rule, subject, worst level and, for one
that depends on the server, the level it falls to when the server holds nothing),
and the overall level, which gives the exit code.

Run through the API and through the command line (``--format json --offline``),
both must report exactly that.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from meshc.api import analyze_file
from meshc.diff import diff_meshes
from meshc.diff.findings import LEVELS
from meshc.diff.payload import RULES
from meshc.diff.streams import summarize_families

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def _expected(case: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CORPUS / case / "expected.json").read_text())
    return doc


def _key(f: dict[str, Any]) -> tuple[str, str, str, str | None]:
    return (f["rule"], f["subject"], f["level"], f.get("if_clear"))


@pytest.mark.parametrize("case", CASES)
def test_api_finds_exactly_what_is_expected(case: str) -> None:
    old, new = (analyze_file(str(CORPUS / case / f"{v}.yaml")) for v in ("old", "new"))
    assert old.core is not None and new.core is not None and old.ok and new.ok
    report = diff_meshes(old.core, new.core)
    got = Counter(
        (f.rule, f.subject, f.level, f.clear if f.depends else None) for f in report.findings
    )
    expected = _expected(case)
    assert got == Counter(_key(f) for f in expected["findings"])
    assert report.level == expected["level"]


@pytest.mark.parametrize("case", CASES)
def test_cli_json_and_exit_code(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    from meshc.cli import main

    code = main(["diff", *(str(CORPUS / case / f"{v}.yaml") for v in ("old", "new")),
                 "--offline", "--format", "json"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    expected = _expected(case)
    got = Counter((f["rule"], f["subject"], f["worst"], f["if_clear"]) for f in doc["findings"])
    assert got == Counter(_key(f) for f in expected["findings"])
    assert (doc["level"], code) == (expected["level"], 1 if expected["level"] == "breaks" else 0)


def test_corpus_covers_every_level_and_the_type_rules_of_each_outcome() -> None:
    findings = [f for case in CASES for f in _expected(case)["findings"]]
    assert {f["level"] for f in findings} == set(LEVELS)
    assert {f.get("if_clear") for f in findings if f["level"] == "breaks"} == {"safe", "restart"}
    type_rules = {f["rule"] for f in findings} & set(RULES)
    for backward, forward in ((True, False), (False, False), (False, True), (True, True)):
        assert any((RULES[r].backward, RULES[r].forward) == (backward, forward)
                   for r in type_rules), (backward, forward)  # fmt: skip
    assert len(CASES) >= 30


def _documented_rules() -> set[str]:
    """The rule ids in the first column of the rules table of docs/operations.md."""
    page = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    table = page.split("### The rules", 1)[1]
    return {
        rule
        for line in table.splitlines()
        if line.startswith("| `")
        for rule in re.findall(r"`([a-z-]+)`", line.split(" | ")[0])
    }


def test_every_documented_rule_has_a_case_and_every_case_a_documented_rule() -> None:
    used = {f["rule"] for case in CASES for f in _expected(case)["findings"]}
    documented = _documented_rules() | set(RULES)
    assert used - documented == set(), "a rule the page does not explain"
    assert documented - used - set(RULES) == set(), "a documented rule no case shows"


def test_family_level_follows_its_members() -> None:
    case = CORPUS / "family_lane_swapped"
    old, new = (analyze_file(str(case / f"{v}.yaml")).core for v in ("old", "new"))
    assert old is not None and new is not None
    report = diff_meshes(old, new)
    family = next(f for f in report.findings if f.kind == "family")
    others = [f for f in report.findings if f.kind != "family" and f.rule != "join-lanes-changed"]
    calmer = summarize_families([family, *others], old, new)[0]
    assert (family.level, calmer.level) == ("breaks", "breaks")
    only_safe = [f for f in others if f.level == "safe"]
    assert summarize_families([family, *only_safe], old, new)[0].level == "safe"
