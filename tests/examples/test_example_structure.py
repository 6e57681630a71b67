"""The structure lens: headings, empty sections, long paragraphs, one-item lists."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshc.examples.review.structure import structure


def review(text: str) -> list[Any]:
    result = structure(SimpleNamespace(doc_id="doc", chunk_id=0, text=text), SimpleNamespace())
    assert result["lens"] == "structure"
    return list(result["findings"])


def flagged(text: str) -> list[tuple[str, str]]:
    return [(text[f["start"] : f["end"]], f["suggestion"]) for f in review(text)]


def paragraph(words: int) -> str:
    return " ".join(["Word"] + ["word"] * (words - 2) + ["end."])


def test_heading_level_skip_suggests_the_right_level() -> None:
    text = "# Guide\n\nIntro.\n\n### Install\n\nRun it.\n"
    assert flagged(text) == [("### Install", "## Install")]
    assert review(text)[0]["severity"] == "warning"


def test_well_nested_headings_and_going_back_up_are_fine() -> None:
    text = "# A\n\nText.\n\n## B\n\nText.\n\n### C\n\nText.\n\n# D\n\nText.\n"
    assert review(text) == []


def test_heading_without_content_before_a_sibling_or_the_end() -> None:
    text = "## Setup\n\n## Usage\n\nRun it.\n\n## Notes\n"
    assert [s for s, _ in flagged(text)] == ["## Setup", "## Notes"]


def test_parent_heading_followed_by_a_subsection_is_not_empty() -> None:
    assert review("## Setup\n\n### Linux\n\nInstall the package.\n") == []


def test_headings_inside_code_fences_do_not_count() -> None:
    text = "# Title\n\nText.\n\n```bash\n### not a heading\n# comment\n```\n"
    assert review(text) == []


def test_heading_with_closing_punctuation() -> None:
    assert flagged("## Setup:\n\nText.\n") == [("## Setup:", "## Setup")]


def test_long_paragraph_is_flagged_and_a_break_suggested() -> None:
    body = paragraph(80) + " " + paragraph(80)
    text = f"Intro.\n\n{body}\n\nOutro.\n"
    (found,) = review(text)
    assert text[found["start"] : found["end"]] == body
    assert "160 words" in found["message"]
    assert found["suggestion"] == 'Start a new paragraph at "Word word word word …".'


def test_paragraphs_under_the_limit_are_fine() -> None:
    assert review(paragraph(140) + "\n\n" + paragraph(140)) == []


def test_wall_of_text_is_one_finding_not_two() -> None:
    lines = [paragraph(10) for _ in range(21)]
    text = "\n".join(lines)
    (found,) = review(text)
    assert "No paragraph breaks in 210 words" in found["message"]
    assert (found["start"], found["end"]) == (0, len(text))


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("Intro.\n\n- only item\n\nMore text.\n", "- only item"),
        ("Steps:\n\n1. Do it.\n", "1. Do it."),
        ("- one item\n  continued here\n\nText.\n", "- one item\n  continued here"),
    ],
)
def test_single_item_lists(text: str, span: str) -> None:
    found = review(text)
    assert [text[f["start"] : f["end"]] for f in found] == [span]
    assert found[0]["severity"] == "info"


@pytest.mark.parametrize(
    "text",
    [
        "- a\n- b\n",
        "- a\n\n- b\n",
        "1. one\n2. two\n   - nested single\n",
        "- a\n  - b\n- c\n",
    ],
)
def test_lists_with_several_items_are_fine(text: str) -> None:
    assert review(text) == []
