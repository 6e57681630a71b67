"""The linear pipeline mesh: normalise a text, then count it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshc.examples.pipeline import WORDS_PER_MINUTE, normalize, normalize_text, stats


def item(text: str) -> SimpleNamespace:
    return SimpleNamespace(id="t1", text=text)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ﬁne ﬂow", "fine flow"),
        ("ＡＢＣ１２３", "ABC123"),
        ("a\u00a0b", "a b"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("one\r\ntwo\rthree", "one\ntwo\nthree"),
        ("  many   spaces\tand tabs  ", "many spaces and tabs"),
        ("a\n\n\n\n\nb", "a\n\nb"),
        ("trailing   \nspaces  ", "trailing\nspaces"),
        ("bell\x07 char", "bell char"),
        ("e\u200b\u0301", "é"),
    ],
)
def test_normalize(raw: str, clean: str) -> None:
    assert normalize(item(raw), None) == {"id": "t1", "text": clean}


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_stats() -> None:
    text = "Dr. Smith arrived at 9 a.m. on Monday. It rained! Did it stop? Well-known fact."
    assert stats(item(text), None) == {
        "id": "t1",
        "words": 16,
        "sentences": 4,
        "reading_minutes": round(16 / WORDS_PER_MINUTE, 2),
    }


def test_stats_of_markdown_counts_headings_and_items_as_sentences() -> None:
    text = "# Title\n\nIntro text here.\n\n- first item\n- second item\n"
    result = stats(item(text), None)
    assert (result["words"], result["sentences"]) == (8, 4)


def test_stats_of_empty_text() -> None:
    assert stats(item(""), None) == {"id": "t1", "words": 0, "sentences": 0, "reading_minutes": 0.0}


def test_reading_time_of_a_long_text() -> None:
    assert stats(item("word " * 2380), None)["reading_minutes"] == 10.0
