"""The tone lens: shouting, exclamation marks, hedging and hostile phrasing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshc.examples.review.tone import tone


def review(text: str) -> list[Any]:
    result = tone(SimpleNamespace(doc_id="doc", chunk_id=0, text=text), SimpleNamespace())
    assert result["lens"] == "tone"
    return list(result["findings"])


def flagged(text: str) -> list[tuple[str, str]]:
    return [(text[f["start"] : f["end"]], f["suggestion"]) for f in review(text)]


@pytest.mark.parametrize(
    ("text", "span", "suggestion"),
    [
        ("PLEASE READ THIS before you deploy.", "PLEASE READ THIS", "Please read this"),
        ("This is VERY important.", "VERY", "very"),
        ("Lumen ships TODAY on iOS.", "TODAY", "today"),
        ("Wait. DO NOT DEPLOY THE API.", "DO NOT DEPLOY THE API", "Do not deploy the API"),
    ],
)
def test_shouting_is_flagged_with_a_calm_version(text: str, span: str, suggestion: str) -> None:
    assert flagged(text) == [(span, suggestion)]
    assert review(text)[0]["severity"] == "warning"


@pytest.mark.parametrize(
    "text",
    [
        "The HTTP API returns JSON over TLS.",
        "Set DEBUG or INFO in the README; see the FAQ and the TODO list.",
        "NOTE: read the LICENSE first.",
        "DO NOT go.",
        "Store it in S3 or on EC2.",
        "Run `SELECT COUNT FROM USERS` in the console.",
    ],
)
def test_acronyms_short_words_and_code_are_not_shouting(text: str) -> None:
    assert review(text) == []


def test_exclamation_runs() -> None:
    text = "Wow!!! Really?! Fine."
    assert flagged(text) == [("!!!", "."), ("?!", "?")]


def test_many_single_exclamations_are_flagged_only_past_a_couple() -> None:
    assert review("Great! Thanks! See you.") == []
    text = "Great! Thanks! See you! Bye."
    found = review(text)
    assert [text[f["start"] : f["end"]] for f in found] == ["!", "!", "!"]
    assert all(f["severity"] == "info" and f["suggestion"] == "." for f in found)


def test_markdown_images_are_not_exclamations() -> None:
    assert review("![one](a.png) ![two](b.png) ![three](c.png)") == []


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("I think we should ship.", "I think"),
        ("Maybe we ship on Friday.", "Maybe"),
        ("Perhaps it works.", "Perhaps"),
        ("It is kind of slow.", "kind of"),
        ("The test is sort of flaky.", "sort of"),
        ("I just wanted to check in.", "just"),
        ("I was wondering if you could help.", "I was wondering if"),
    ],
)
def test_hedges(text: str, span: str) -> None:
    assert [s for s, _ in flagged(text)] == [span]


@pytest.mark.parametrize(
    "text",
    [
        "It is a kind of cache.",
        "What sort of test is this?",
        "We just shipped the release.",
        "Use lazy loading for images.",
    ],
)
def test_nouns_and_plain_uses_are_not_hedges(text: str) -> None:
    assert review(text) == []


def test_hostile_and_condescending_phrasing() -> None:
    text = "Per my last email, this is stupid. Simply run it."
    found = review(text)
    assert [(text[f["start"] : f["end"]], f["severity"]) for f in found] == [
        ("Per my last email", "warning"),
        ("stupid", "warning"),
        ("Simply", "info"),
    ]
