"""Cut a document into review tasks on paragraph boundaries.

Chunks are contiguous slices of the document (joined, they give it back byte for
byte), so a finding's offset in a chunk plus the chunk's start is its offset in the
document. The cut is deterministic: the report recomputes it from the document alone to
turn chunk offsets into line and column numbers.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import TypedDict

from meshc.examples._text import Span, fence_marker, heading_level

_SENTENCE_BREAK = re.compile(r"[.!?][\"'”’)\]]*\s+")
_LINE_BREAK = re.compile(r"\n+")
_SPACE = re.compile(r"\s+")


class ReviewTaskDict(TypedDict):
    """A task of the review mesh, as written to ``doc.review.tasks``."""

    doc_id: str
    chunk_id: int
    text: str


def split_document(doc_id: str, text: str, max_chars: int = 2000) -> list[ReviewTaskDict]:
    """Review tasks for a document, chunk ids from 0, each text at most ``max_chars``.

    Chunks hold whole paragraphs where they fit, a heading stays with the paragraph it
    introduces, and a paragraph longer than ``max_chars`` is cut at a sentence end (or
    failing that a line break or a space). A blank document gives no tasks.
    """
    spans = chunk_spans(text, max_chars)
    return [
        {"doc_id": doc_id, "chunk_id": number, "text": text[start:end]}
        for number, (start, end) in enumerate(spans)
    ]


def chunk_spans(text: str, max_chars: int = 2000) -> list[Span]:
    """Where ``split_document`` cuts: contiguous (start, end) spans covering the text."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    if not text.strip():
        return []
    pieces: list[Span] = []
    for start, end in _paragraph_spans(text):
        pieces.extend(_fit(text, start, end, max_chars))
    return _pack(text, pieces, max_chars)


def _paragraph_spans(text: str) -> list[Span]:
    """Paragraphs with the blank lines after them; blank lines in code fences do not count."""
    cuts = [0]
    fence: str | None = None
    blank_before = seen_text = False
    offset = 0
    for line in text.splitlines(keepends=True):
        blank = not line.strip()
        if fence is None and not blank and blank_before and seen_text:
            cuts.append(offset)
        marker = fence_marker(line)
        if marker and fence is None:
            fence = marker
        elif marker == fence:
            fence = None
        blank_before, seen_text = blank, seen_text or not blank
        offset += len(line)
    cuts.append(len(text))
    return list(pairwise(cuts))


def _fit(text: str, start: int, end: int, max_chars: int) -> list[Span]:
    """Cut a paragraph that is too long at the last good break before the limit."""
    spans: list[Span] = []
    while end - start > max_chars:
        cut = _cut(text, start, start + max_chars)
        spans.append((start, cut))
        start = cut
    spans.append((start, end))
    return spans


def _cut(text: str, start: int, limit: int) -> int:
    for pattern in (_SENTENCE_BREAK, _LINE_BREAK, _SPACE):
        ends = [m.end() for m in pattern.finditer(text, start, limit)]
        if ends and ends[-1] > start:
            return ends[-1]
    return limit


def _pack(text: str, pieces: list[Span], max_chars: int) -> list[Span]:
    """Greedily fill chunks with whole pieces; never end a chunk on a bare heading."""
    chunks: list[Span] = []
    start, last = pieces[0][0], pieces[0]
    for piece in pieces[1:]:
        if piece[1] - start > max_chars:
            cut = piece[0]
            if last[0] > start and _only_headings(text, last) and piece[1] - last[0] <= max_chars:
                cut = last[0]
            chunks.append((start, cut))
            start = cut
        last = piece
    chunks.append((start, len(text)))
    return chunks


def _only_headings(text: str, span: Span) -> bool:
    lines = [line for line in text[span[0] : span[1]].splitlines() if line.strip()]
    return bool(lines) and all(heading_level(line) for line in lines)
