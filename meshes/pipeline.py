"""The linear pipeline mesh: normalise a text, then count it.

The smallest useful mesh: two agents in a row, each a pure function of its input, so
it shows the runtime's delivery and retry behaviour without any domain logic in the way.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Protocol, TypedDict

from meshc.examples._text import count_words, sentence_spans

WORDS_PER_MINUTE = 238  # average silent reading speed of adults (Brysbaert, 2019)

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class TextItem(Protocol):
    """An input of the pipeline: an id and a text."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


class TextDict(TypedDict):
    id: str
    text: str


class StatsDict(TypedDict):
    id: str
    words: int
    sentences: int
    reading_minutes: float


def normalize(payload: TextItem, ctx: object) -> TextDict:
    """NFKC, one kind of line break, single spaces, at most one blank line, no invisibles.

    Downstream counting and comparison should not depend on how a text was typed or
    pasted: full-width letters, non-breaking spaces, ligatures, zero-width characters
    and Windows line endings all become their plain forms.
    """
    return {"id": payload.id, "text": normalize_text(payload.text)}


def normalize_text(text: str) -> str:
    """The text transformation of ``normalize``; idempotent."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    # Invisibles go before NFKC: one between a letter and its accent blocks composition.
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def stats(payload: TextItem, ctx: object) -> StatsDict:
    """Words, sentences and an estimated reading time in minutes (two decimals)."""
    words = count_words(payload.text)
    return {
        "id": payload.id,
        "words": words,
        "sentences": len(sentence_spans(payload.text)),
        "reading_minutes": round(words / WORDS_PER_MINUTE, 2),
    }
