"""The clarity lens: long sentences, passive voice, vague and wordy phrasing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshc.examples.review.clarity import clarity


def review(text: str) -> list[dict[str, Any]]:
    result = clarity(SimpleNamespace(doc_id="doc", chunk_id=0, text=text), SimpleNamespace())
    assert result["lens"] == "clarity"
    return list(result["findings"])


def spans(text: str) -> list[str]:
    return [text[f["start"] : f["end"]] for f in review(text)]


def sentence(words: int) -> str:
    return " ".join(["Word"] + ["word"] * (words - 2) + ["end."])


def test_sentence_of_thirty_words_is_fine() -> None:
    assert review(sentence(30)) == []


def test_sentence_over_thirty_words_is_a_warning_spanning_the_sentence() -> None:
    text = "Short one. " + sentence(31) + " Another short one."
    (found,) = review(text)
    assert found["severity"] == "warning"
    assert text[found["start"] : found["end"]] == sentence(31)
    assert "31 words" in found["message"]


def test_sentence_over_forty_five_words_is_an_error() -> None:
    (found,) = review(sentence(46))
    assert found["severity"] == "error"


def test_long_sentence_suggests_where_to_split() -> None:
    text = (
        "The deploy tool applies configuration to every region in parallel by default, "
        "and nobody noticed the scope of the rollout because the summary showed only the "
        "diff of the file and not the list of targets."
    )
    (found,) = review(text)
    assert '", and"' in found["suggestion"]


def test_abbreviations_do_not_end_sentences() -> None:
    text = "Use a cache, e.g. Redis. " + sentence(20)
    assert review(text) == []


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("The report was written yesterday.", "was written"),
        ("The servers were restarted.", "were restarted"),
        ("The data is being reviewed.", "being reviewed"),
        ("It has been deployed.", "been deployed"),
        ("The bug was quickly fixed.", "was quickly fixed"),
        ("Mistakes were made.", "were made"),
        ("The file is\nread once.", "is\nread"),
    ],
)
def test_passive_voice(text: str, span: str) -> None:
    found = review(text)
    assert [text[f["start"] : f["end"]] for f in found] == [span]
    assert found[0]["severity"] == "info"


def test_passive_with_an_actor_suggests_the_active_sentence() -> None:
    (found,) = review("The report was written by the release manager on Monday.")
    assert '"the release manager wrote …"' in found["suggestion"]


def test_passive_by_default_is_not_an_actor() -> None:
    (found,) = review("The option was enabled by default.")
    assert found["suggestion"] == "Say who enabled it, as the subject of the sentence."


@pytest.mark.parametrize(
    "text",
    [
        "I am interested in it.",
        "She was tired and we are thrilled.",
        "The plan is based on data and is limited to staff.",
        "We need speed; the answer is red.",
        "Everything is fine and the team is here.",
    ],
)
def test_states_and_adjectives_are_not_passive(text: str) -> None:
    assert review(text) == []


@pytest.mark.parametrize(
    ("text", "span", "suggestion"),
    [
        ("This is very important.", "very important", "crucial"),
        ("It is really fast.", "really fast", "fast"),
        ("In order to ship, we wait.", "In order to", "To"),
        ("We utilize caches.", "utilize", "use"),
        ("We left due to the fact that it rained.", "due to the fact that", "because"),
        ("We will make a decision soon.", "make a decision", "decide"),
    ],
)
def test_vague_and_wordy_phrases_have_replacements(text: str, span: str, suggestion: str) -> None:
    found = review(text)
    assert [(text[f["start"] : f["end"]], f["suggestion"]) for f in found] == [(span, suggestion)]


def test_unsourced_claims_are_warnings_and_not_also_passive() -> None:
    text = "It is widely believed that caches help. Many experts agree. Studies show this."
    found = review(text)
    assert [text[f["start"] : f["end"]] for f in found] == [
        "It is widely believed",
        "Many experts",
        "Studies show",
    ]
    assert {f["severity"] for f in found} == {"warning"}


def test_empty_emphasis_and_vague_quantities() -> None:
    text = "Clearly, it works for various teams."
    assert spans(text) == ["Clearly", "various"]


@pytest.mark.parametrize(
    "text",
    [
        "Thank you very much.",
        "It was the very first time.",
        "Quite a few came.",
        "`very important` is a string in code.",
    ],
)
def test_idioms_and_code_are_not_flagged(text: str) -> None:
    assert review(text) == []
