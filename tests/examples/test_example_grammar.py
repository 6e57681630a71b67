"""The grammar lens finds real mistakes, points at them exactly, and proposes the fix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshc.examples.review.grammar import grammar


def review(text: str) -> list[Any]:
    task = SimpleNamespace(doc_id="doc", chunk_id=3, text=text)
    return list(grammar(task, SimpleNamespace())["findings"])


def flagged(text: str) -> list[tuple[str, str]]:
    """(flagged span, suggestion) pairs, checking that every offset pair is sane."""
    found = review(text)
    for f in found:
        assert 0 <= f["start"] < f["end"] <= len(text)
    return [(text[f["start"] : f["end"]], f["suggestion"]) for f in found]


POSITIVE = [
    ("We saw the the cat.", "the the", "the"),
    ("It is is fine.", "is is", "is"),
    ("The end of\nof the line.", "of\nof", "of"),
    ("Please recieve the parcel.", "recieve", "receive"),
    ("Recieve it today.", "Recieve", "Receive"),
    ("The crash occured twice.", "occured", "occurred"),
    ("Wait untill noon.", "untill", "until"),
    ("Use the one wich works.", "wich", "which"),
    ("We learned alot.", "alot", "a lot"),
    ("Keep them seperate.", "seperate", "separate"),
    ("It is definately done.", "definately", "definitely"),
    ("he don't care", "he don't", "he doesn't"),
    ("He don’t care", "He don’t", "He doesn't"),
    ("They was late.", "They was", "They were"),
    ("we was told", "we was", "we were"),
    ("Honestly it were fine.", "it were", "it was"),
    ("she have a plan", "she have", "she has"),
    ("they doesn't know", "they doesn't", "they don't"),
    ("I is here", "I is", "I am"),
    ("There is many reasons.", "There is many", "There are many"),
    ("there's several ways", "there's several", "there are several"),
    ("there was two bugs", "there was two", "there were two"),
    ("Everyone are welcome.", "Everyone are", "Everyone is"),
    ("A lot of bugs is fixed.", "A lot of bugs is", "A lot of bugs are"),
    ("The number of users are growing.", "The number of users are", "The number of users is"),
    ("It takes a hour.", "a hour", "an hour"),
    ("He is a honest man.", "a honest", "an honest"),
    ("She went to an university.", "an university", "a university"),
    ("Ask an user.", "an user", "a user"),
    ("Eat a apple.", "a apple", "an apple"),
    ("Buy an banana.", "an banana", "a banana"),
    ("Send a HTTP request.", "a HTTP", "an HTTP"),
    ("Call a API.", "a API", "an API"),
    ("Paste an URL.", "an URL", "a URL"),
    ("Work a 8-hour day.", "a 8-hour", "an 8-hour"),
    ("Pay an one-time fee.", "an one-time", "a one-time"),
    ("Plan an European trip.", "an European", "a European"),
    ("Try for an\n30-day trial.", "an\n30-day", "a 30-day"),
    ("You could of asked.", "could of", "could have"),
    ("Should of known.", "Should of", "Should have"),
    ("It wouldn't of mattered.", "wouldn't of", "wouldn't have"),
    ("It is more then enough.", "more then", "more than"),
    ("Its a trap.", "Its a", "It's a"),
    ("its been a week", "its been", "it's been"),
    ("Their is a problem.", "Their is", "There is"),
    ("I think their are two.", "their are", "there are"),
]


@pytest.mark.parametrize(("text", "span", "suggestion"), POSITIVE)
def test_finds_the_mistake_with_its_exact_span_and_fix(
    text: str, span: str, suggestion: str
) -> None:
    assert (span, suggestion) in flagged(text)


NEGATIVE = [
    "We had had enough of it.",
    "I know that that is true.",
    "The end.\n\nThe end.",
    "It takes an hour and an honest effort.",
    "A university, a user, a European, a one-time fee, a unique idea, a URL.",
    "An uninstalled package, an umbrella, an urgent fix, an update.",
    "An HTTP call to an API, a JSON body, an SDK, an LLM, a YAML file.",
    "An 8-hour day, an 11-page report, an 18-month plan, a 10-page memo, a 110-page book.",
    "A REST API, a SQL query, an SQL query, a RAM upgrade.",
    "Plan A is fine, and option A or B both work.",
    "If it were up to me, I wish I were there.",
    "Part I is done, so to speak, as it were.",
    "Does it have a cache? Let it have its way.",
    "We might of course try again.",
    "The team did its own review; its goal was clear.",
    "Their plan is good, and their idea was better.",
    "A lot of work is done; a lot of news is good; there is some confusion.",
    "The number of users is growing, and they were happy.",
    "He doesn't know, they don't care, and she has a plan.",
    "Call `recieve()` or read https://example.com/recieve/the/the for details.",
    "```\nthey was here, the the end, teh code\n```\n",
    "Rather than wait, we left; later then, we talked.",
    "## Usage\nUsage is simple.",
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_leaves_correct_text_alone(text: str) -> None:
    assert flagged(text) == []


def test_result_shape_and_severities() -> None:
    result = grammar(SimpleNamespace(doc_id="d7", chunk_id=2, text="the the recieve"), None)
    assert result["doc_id"] == "d7"
    assert result["chunk_id"] == 2
    assert result["lens"] == "grammar"
    assert [f["severity"] for f in result["findings"]] == ["error", "error"]
    for f in result["findings"]:
        assert set(f) == {"start", "end", "severity", "message", "suggestion"}
        assert f["message"] and "\n" not in f["message"]


def test_findings_are_sorted_by_position() -> None:
    text = "Wich one? They was here, a hour ago, and the the end untill noon."
    starts = [f["start"] for f in review(text)]
    assert starts == sorted(starts)
    assert len(starts) == 5


def test_misspelling_table_is_large_and_never_maps_to_itself() -> None:
    from meshc.examples.review._spelling import MISSPELLINGS

    assert len(MISSPELLINGS) >= 80
    assert all(wrong != right and wrong.islower() for wrong, right in MISSPELLINGS.items())
