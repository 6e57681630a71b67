"""A consequence of an error is a note of that error, never a diagnostic listed
before it; and the YAML error a type expression causes in a flow mapping says so.

The fixtures (``# N: MESH107``) say which findings are folded where; these tests hold
the rule itself: chains, circles, the limit on notes, warnings that fold nothing.
"""

from __future__ import annotations

import json

import pytest
from corpus import FIXTURES, all_cases
from meshc import codes
from meshc.api import analyze_file, analyze_text
from meshc.cli import main
from meshc.diagnostics import FOLD_LIMIT, Diagnostic, Span, fold_consequences


def _at(line: int, code: str = "MESH107", **names: tuple[str, ...]) -> Diagnostic:
    return codes.REGISTRY[code].at(Span("m.yaml", line, 1, line, 2), f"finding {line}", **names)


def test_a_chain_of_consequences_goes_under_its_first_cause() -> None:
    cause = _at(30, "MESH002", breaks=("coordinator",))
    first = _at(10, subjects=("lane", "coordinator"), breaks=("lane",))
    second = _at(20, subjects=("aggregator", "lane"), breaks=("aggregator",))
    unrelated = _at(5, subjects=("other",), breaks=("other",))
    folded = fold_consequences([second, cause, first, unrelated])
    assert [d.span.line for d in folded] == [5, 30]
    root = folded[1]
    assert [(n.span.line, n.message) for n in root.related] == [
        (10, "as a result, finding 10 [MESH107]"),
        (20, "as a result, finding 20 [MESH107]"),
    ]


def test_findings_that_cause_each_other_keep_the_first() -> None:
    a = _at(8, subjects=("a", "b"), breaks=("a",))
    b = _at(4, subjects=("b", "a"), breaks=("b",))
    folded = fold_consequences([a, b])
    assert [d.span.line for d in folded] == [4]
    assert [n.span.line for n in folded[0].related] == [8]


def test_of_two_causes_the_first_in_the_file_takes_the_consequence() -> None:
    early = _at(3, "MESH104", breaks=("s",))
    late = _at(9, "MESH104", breaks=("s",))
    effect = _at(1, "MESH105", subjects=("s",))
    folded = fold_consequences([late, effect, early])
    assert [(d.span.line, len(d.related)) for d in folded] == [(3, 1), (9, 0)]


def test_a_warning_folds_nothing() -> None:
    warning = codes.UNREAD_STREAM.at(Span("m.yaml", 2, 1, 2, 2), "w", breaks=("s",))
    effect = _at(1, "MESH105", subjects=("s",))
    assert fold_consequences([warning, effect]) == [effect, warning]


def test_past_the_limit_the_rest_are_counted() -> None:
    cause = _at(100, "MESH002", breaks=("x",))
    effects = [_at(i, subjects=("x",)) for i in range(1, FOLD_LIMIT + 4)]
    (root,) = fold_consequences([cause, *effects])
    assert len(root.related) == FOLD_LIMIT + 1
    assert root.related[-1].message == "and 3 more findings that follow from this one"
    assert root.related[-1].span == root.span


def test_no_reported_finding_follows_from_another_in_any_fixture() -> None:
    """The invariant behind the fixtures: after folding, no listed finding is about a
    name that another listed error breaks."""
    for case in all_cases():
        if case.resolve or case.max_bytes:
            continue
        diags = analyze_file(str(case.path)).diagnostics
        for d in diags:
            causes = [r for r in diags if r is not d and r.is_error and r.breaks & d.subjects]
            assert not causes, f"{case.name}: {d.message} follows from {causes[0].message}"


def test_the_typo_in_reads_is_the_only_error_and_says_what_follows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = FIXTURES / "mesh002_typo_folds_unreachable_lanes.yaml"
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].endswith("unknown key `reeds` in agent `coordinator` [MESH002]")
    assert "note: " + f"{path}:17:5: as a result, agent `clarity` is unreachable" in out
    assert out.splitlines()[-1] == "  help: did you mean `reads`?"
    assert err == "1 error, 0 warnings in 1 file\n"


def test_every_use_of_an_undeclared_type_is_a_note_of_one_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = FIXTURES / "mesh201_type_used_by_several_streams.yaml"
    main(["validate", str(path), "--format", "json"])
    (error,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert error["message"] == "stream `t.in` uses undeclared type `Tiket`"
    assert [(r["line"], r["message"]) for r in error["related"]] == [
        (11, "stream `t.mid` also uses `Tiket` here"),
        (13, "stream `t.out` also uses `Tiket` here"),
        (5, "as a result, type `Ticket` is used by no stream and no other type [MESH207]"),
    ]
    assert error["help"] == "did you mean `Ticket`?"


def test_a_type_expression_in_a_flow_mapping_is_told_to_be_quoted() -> None:
    path = FIXTURES / "mesh001_flow_type_unquoted.yaml"
    (diag,) = analyze_file(str(path)).diagnostics
    assert (diag.span.line, diag.span.column, diag.span.end_column) == (6, 31, 44)
    assert "`list[Verdict]` is inside a flow mapping" in diag.message
    assert diag.help.startswith('quote the type expression: `verdicts: "list[Verdict]"`')


@pytest.mark.parametrize(
    ("value", "expr", "column"),
    [
        ("{a: dict[str, list[X]], b: int}", "dict[str, list[X]]", 10),
        ("{a: list[X] | None}", "list[X] | None", 10),
    ],
)
def test_the_hint_takes_in_the_whole_expression(value: str, expr: str, column: int) -> None:
    (diag,) = analyze_text(f"mesh: m\ntypes:\n  T: {value}\n").diagnostics
    assert diag.code == "MESH001" and f"`{expr}`" in diag.message
    assert (diag.span.column, diag.span.end_column) == (column, column + len(expr))


def test_other_flow_errors_keep_the_parser_message() -> None:
    (diag,) = analyze_text("mesh: m\ntypes:\n  T: {a: [1}\n").diagnostics
    assert diag.code == "MESH001" and "did not find expected" in diag.message
    assert "quote the type expression" not in diag.help
