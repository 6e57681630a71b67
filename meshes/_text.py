"""Text primitives shared by the example handlers: words, sentences, code masking.

Handlers report character offsets into the text they were given, so every helper here
works on spans of the original string and never rewrites it. Masking replaces code and
URLs with a placeholder of the same length, so an offset found in the masked text points
at the same characters in the original.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

Span = tuple[int, int]

#: Stands in for masked characters: neither a word character nor whitespace, so no
#: detector matches across it and no sentence is split inside it.
MASK = "\ufffc"

_FENCE = re.compile(r"[ \t]{0,3}(```|~~~)")
_FENCE_BLOCK = re.compile(r"^[ \t]{0,3}(```|~~~).*?(?:\n[ \t]{0,3}\1[^\n]*|\Z)", re.M | re.S)
_NOT_NEWLINE = re.compile(r"[^\r\n]")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"”’]")
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]+|$)")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_TABLE_ROW = re.compile(r"[ \t]*\|")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")


def wordset(words: str) -> frozenset[str]:
    """A set of words written as one space-separated string, for compact word lists."""
    return frozenset(words.split())


def word_map(pairs: str) -> dict[str, str]:
    """A mapping written as space-separated ``key:value`` pairs, for compact word tables."""
    return dict(pair.split(":", 1) for pair in pairs.split())


_ABBREVIATIONS = wordset(
    "mr mrs ms dr prof st sr jr vs etc e.g i.e approx fig no inc ltd co dept est"
)


def mask_code(text: str) -> str:
    """Blank out fenced code, inline code and URLs, keeping length and newlines.

    A reviewer must not flag ``recieve()`` in a code sample or a misspelt word in a URL.
    An unclosed fence runs to the end of the text, as in Markdown.
    """
    if "`" not in text and "~~~" not in text and "http" not in text and "www." not in text:
        return text
    pieces: list[str] = []
    done = 0
    for block in _FENCE_BLOCK.finditer(text):
        pieces.append(_mask_inline(text[done : block.start()]))
        pieces.append(_NOT_NEWLINE.sub(MASK, block.group()))
        done = block.end()
    pieces.append(_mask_inline(text[done:]))
    return "".join(pieces)


def _mask_inline(text: str) -> str:
    text = _INLINE_CODE.sub(lambda m: MASK * len(m.group()), text)
    return _URL.sub(lambda m: MASK * len(m.group()), text)


def fence_marker(line: str) -> str | None:
    """The fence (```` ``` ```` or ``~~~``) a line opens or closes, if it is a fence line."""
    match = _FENCE.match(line)
    return match.group(1) if match else None


def heading_level(line: str) -> int:
    """1–6 for a Markdown ATX heading line ("## Setup" → 2), else 0."""
    match = _HEADING.match(line)
    return match.group().strip().count("#") if match else 0


def word_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Words (letters or digits, joined by hyphens or apostrophes) within text[start:end]."""
    stop = len(text) if end is None else end
    return [m.span() for m in _WORD.finditer(text, start, stop)]


def count_words(text: str, start: int = 0, end: int | None = None) -> int:
    """How many words text[start:end] holds; hyphenated words count once."""
    return len(word_spans(text, start, end))


def line_spans(text: str) -> Iterator[Span]:
    """(start, end) of every line, end excluding the line break."""
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        yield offset, offset + len(body)
        offset += len(line)


def block_spans(text: str) -> list[Span]:
    """Runs of text that no sentence crosses: paragraphs, headings, list items, rows.

    Markdown wraps prose over several lines, but a heading or a list item ends whatever
    came before it even without a full stop; markers (``#``, ``-``, ``1.``) are excluded.
    """
    blocks: list[Span] = []
    current: Span | None = None
    for start, end in line_spans(text):
        line = text[start:end]
        if not line.strip(MASK + " \t"):
            _close(blocks, current)
            current = None
            continue
        standalone = _HEADING.match(line) or _TABLE_ROW.match(line)
        marker = standalone or _LIST_ITEM.match(line)
        if marker or current is None:
            _close(blocks, current)
            current = (start + (marker.end() if marker else 0), end)
        else:
            current = (current[0], end)
        if standalone:
            _close(blocks, current)
            current = None
    _close(blocks, current)
    return blocks


def _close(blocks: list[Span], current: Span | None) -> None:
    if current is not None and current[1] > current[0]:
        blocks.append(current)


def sentence_spans(text: str) -> list[Span]:
    """Sentences as trimmed spans, skipping abbreviations such as "e.g." and "Dr."."""
    spans: list[Span] = []
    for start, end in block_spans(text):
        spans.extend(_split_block(text, start, end))
    return [s for s in spans if count_words(text, *s)]


def _split_block(text: str, start: int, end: int) -> Iterator[Span]:
    begin = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if _is_abbreviation(text, begin, match.start()) or _continues(text, match.end(), end):
            continue
        yield _trim(text, begin, match.end())
        begin = match.end()
    if text[begin:end].strip():
        yield _trim(text, begin, end)


def _is_abbreviation(text: str, begin: int, dot: int) -> bool:
    if text[dot] != ".":
        return False
    words = text[begin:dot].split()
    last = words[-1].lower().lstrip("(\"'“") if words else ""
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def _continues(text: str, after: int, end: int) -> bool:
    """A full stop followed by a lowercase word ("approx. ten") does not end a sentence."""
    rest = text[after:end].lstrip()
    return bool(rest) and rest[0].islower()


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
