"""The aggregator's summary and the plain-text report built from summaries."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pydantic

from meshc.examples.review import format_report, split_document
from meshc.examples.review.grammar import grammar
from meshc.examples.review.summary import summarize

LANES = ("grammar", "clarity", "tone", "structure")


class FindingModel(pydantic.BaseModel):
    start: int
    end: int
    severity: str
    message: str
    suggestion: str


class LensModel(pydantic.BaseModel):
    doc_id: str
    chunk_id: int
    lens: str
    findings: list[FindingModel]


def finding(start: int, end: int, message: str = "m") -> dict[str, Any]:
    return {"start": start, "end": end, "severity": "info", "message": message, "suggestion": "s"}


def joined(parts: dict[str, Any], missing: tuple[str, ...] = (), **key: Any) -> Any:
    return SimpleNamespace(key=key or {"doc_id": "d", "chunk_id": 1}, parts=parts, missing=missing)


def lens(name: str, *findings: dict[str, Any]) -> LensModel:
    return LensModel(doc_id="d", chunk_id=1, lens=name, findings=list(findings))


def test_summary_shape_with_pydantic_parts() -> None:
    parts = {name: lens(name) for name in LANES}
    parts["tone"] = lens("tone", finding(9, 12), finding(1, 4))
    summary = summarize(joined(parts), SimpleNamespace())
    assert summary == {
        "doc_id": "d",
        "chunk_id": 1,
        "lenses": {
            "clarity": [],
            "grammar": [],
            "structure": [],
            "tone": [finding(1, 4), finding(9, 12)],
        },
        "missing": [],
    }
    assert list(summary["lenses"]) == sorted(LANES)
    json.dumps(summary)


def test_missing_lanes_are_listed_and_absent_from_lenses() -> None:
    parts = {"grammar": lens("grammar"), "tone": lens("tone")}
    summary = summarize(joined(parts, missing=("structure", "clarity")), None)
    assert sorted(summary["lenses"]) == ["grammar", "tone"]
    assert summary["missing"] == ["clarity", "structure"]


def test_summary_accepts_plain_objects_and_dicts() -> None:
    part = SimpleNamespace(doc_id="d", chunk_id=1, findings=[SimpleNamespace(**finding(0, 2))])
    summary = summarize(joined({"grammar": part, "tone": {"findings": [finding(3, 4)]}}), None)
    assert summary["lenses"] == {"grammar": [finding(0, 2)], "tone": [finding(3, 4)]}


def test_identity_falls_back_to_the_parts() -> None:
    part = SimpleNamespace(doc_id="doc-9", chunk_id=4, findings=[])
    summary = summarize(SimpleNamespace(key={}, parts={"grammar": part}, missing=()), None)
    assert (summary["doc_id"], summary["chunk_id"]) == ("doc-9", 4)


def test_summary_is_independent_of_arrival_order() -> None:
    parts = {name: lens(name, finding(2, 3), finding(0, 1)) for name in LANES}
    backwards = dict(reversed(list(parts.items())))
    assert summarize(joined(parts), None) == summarize(joined(backwards), None)


def review(doc_id: str, text: str, max_chars: int = 2000) -> list[dict[str, Any]]:
    """Run the grammar lens over a document the way the mesh would, one summary per chunk."""
    summaries = []
    for task in split_document(doc_id, text, max_chars):
        result = grammar(SimpleNamespace(**task), None)
        parts = {"grammar": result}
        key = {"doc_id": doc_id, "chunk_id": task["chunk_id"]}
        summaries.append(summarize(joined(parts, ("clarity",), **key), None))
    return [dict(s) for s in summaries]


DOC = "# Notes\n\nFirst line is fine.\nThe the second line.\n\nWe recieve mail.\n"


def test_report_places_findings_by_line_and_column() -> None:
    report = format_report(review("notes", DOC), {"notes": DOC})
    assert "  4:1      error    “The the”" in report
    assert "  6:4      error    “recieve”" in report
    assert "→ receive" in report
    assert '"recieve" is a common misspelling of "receive".' in report


def test_report_maps_offsets_of_later_chunks() -> None:
    summaries = review("notes", DOC, max_chars=30)
    assert len(summaries) > 1
    report = format_report(summaries, {"notes": DOC}, max_chars=30)
    assert "  4:1 " in report
    assert "  6:4 " in report


def test_report_counts_per_lens_and_totals() -> None:
    report = format_report(review("notes", DOC), {"notes": DOC})
    assert "1 chunk reviewed · 2 findings: 2 errors, 0 warnings, 0 info" in report
    assert "grammar 2 · clarity 0 · tone 0 · structure 0" in report
    assert "not reviewed: clarity (chunk 0)" in report
    assert report.rstrip().splitlines()[-2] == (
        "Total: 1 document · 1 chunk · 2 findings: 2 errors, 0 warnings, 0 info"
    )


def test_report_lists_documents_without_findings_or_summaries() -> None:
    report = format_report([], {"empty": "Fine text.\n"})
    assert "empty\n=====" in report
    assert "0 chunks reviewed" not in report
    assert "0 of 1 chunks reviewed · no findings" in report


def test_report_without_the_document_uses_chunk_offsets() -> None:
    report = format_report(review("notes", DOC), {})
    assert "chunk 0 @" in report


def test_report_ignores_a_redelivered_summary_and_input_order() -> None:
    summaries = review("notes", DOC, max_chars=30)
    once = format_report(summaries, {"notes": DOC}, max_chars=30)
    twice = format_report(summaries[::-1] + summaries, {"notes": DOC}, max_chars=30)
    assert once == twice


def test_report_colours_only_on_request() -> None:
    plain = format_report(review("notes", DOC), {"notes": DOC})
    coloured = format_report(review("notes", DOC), {"notes": DOC}, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[31merror" in coloured
