"""Shared text primitives: code masking keeps offsets; sentences respect Markdown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshc.examples._text import MASK, count_words, mask_code, sentence_spans


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def test_mask_blanks_code_and_urls_but_keeps_offsets() -> None:
    text = "Run `make x` now.\n```py\nprint(1)\n\nmore\n```\nSee https://e.com/a_b.\n"
    masked = mask_code(text)
    assert len(masked) == len(text)
    assert [i for i, c in enumerate(masked) if c == "\n"] == [
        i for i, c in enumerate(text) if c == "\n"
    ]
    assert masked.startswith("Run " + MASK * 8 + " now.")
    assert "print" not in masked and "more" not in masked
    assert "e.com" not in masked and masked.endswith(".\n")


def test_unclosed_fence_runs_to_the_end() -> None:
    assert mask_code("Text.\n~~~\ncode\n").endswith(MASK * 4 + "\n")


@given(st.text(alphabet=st.sampled_from("ab `~\nh:/."), max_size=200))
def test_masking_never_changes_length_or_line_breaks(text: str) -> None:
    masked = mask_code(text)
    assert len(masked) == len(text)
    assert all((a == "\n") == (b == "\n") for a, b in zip(text, masked, strict=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Dr. Smith met Mr. Jones, e.g. on Monday.", ["Dr. Smith met Mr. Jones, e.g. on Monday."]),
        ("It costs approx. ten euros. Fine.", ["It costs approx. ten euros.", "Fine."]),
        (
            "# Heading\nText that\nwraps.\n- item one\n- item two",
            ["Heading", "Text that\nwraps.", "item one", "item two"],
        ),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_words_count_hyphenated_and_contracted_words_once() -> None:
    assert count_words("Don't re-run the well-known 3.5 test") == 7
