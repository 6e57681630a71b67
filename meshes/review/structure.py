"""The structure lens: the shape of a Markdown-ish text rather than its sentences.

Readers navigate by headings and skim by paragraphs and lists, so a skipped heading
level, an empty section, a wall of text or a one-item list costs them time even when
every sentence is fine. Code blocks are content but are never inspected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from meshc.examples._text import MASK, count_words, heading_level, mask_code, sentence_spans
from meshc.examples.review._common import Finding, LensResult, ReviewTask, finding, lens_result

LONG_PARAGRAPH = 150
WALL_OF_TEXT = 200

Kind = Literal["blank", "code", "heading", "item", "text"]
_LIST_ITEM = re.compile(r"([ \t]*)(?:[-*+]|\d{1,9}[.)])[ \t]+\S")


@dataclass(frozen=True)
class _Line:
    start: int  # first character after the indentation
    end: int  # end of the line without trailing spaces
    kind: Kind
    indent: int
    level: int = 0  # heading level


def structure(payload: ReviewTask, ctx: object) -> LensResult:
    """Review one chunk's structure: headings, sections, paragraphs and lists."""
    text = payload.text
    lines = _classify(text, mask_code(text))
    findings = [*_headings(text, lines), *_lists(lines)]
    wall = _wall_of_text(text, lines)
    findings.extend([wall] if wall else _long_paragraphs(text, lines))
    return lens_result(payload, "structure", findings)


def _classify(text: str, masked: str) -> list[_Line]:
    lines: list[_Line] = []
    offset = 0
    for raw in masked.splitlines(keepends=True):
        body = raw.rstrip("\r\n").rstrip()
        indent = len(body) - len(body.lstrip())
        start, end = offset + indent, offset + len(body)
        lines.append(_Line(start, end, _kind(body), indent, heading_level(body)))
        offset += len(raw)
    return lines


def _kind(line: str) -> Kind:
    if not line.strip():
        return "blank"
    if not line.strip(MASK + " \t"):
        return "code"
    if heading_level(line):
        return "heading"
    return "item" if _LIST_ITEM.match(line) else "text"


def _headings(text: str, lines: list[_Line]) -> Iterator[Finding]:
    previous = 0
    for index, line in enumerate(lines):
        if line.kind != "heading":
            continue
        title = text[line.start : line.end].lstrip("#").strip().rstrip("#").strip()
        span = (line.start, line.end)
        if previous and line.level > previous + 1:
            message = f"Heading level jumps from h{previous} to h{line.level}."
            yield finding(span, "warning", message, "#" * (previous + 1) + " " + title)
        if _is_empty_section(lines, index):
            message = f'Section "{title}" is empty: a heading with nothing under it.'
            yield finding(span, "warning", message, "Add a sentence under it, or remove it.")
        if title.endswith((".", ":")):
            message = "Headings are labels, not sentences: no closing punctuation."
            yield finding(span, "info", message, "#" * line.level + " " + title[:-1])
        previous = line.level


def _is_empty_section(lines: list[_Line], index: int) -> bool:
    """No content before a heading of the same or a higher level (or the end)."""
    level = lines[index].level
    following = next((line for line in lines[index + 1 :] if line.kind != "blank"), None)
    return following is None or (following.kind == "heading" and following.level <= level)


def _paragraphs(lines: list[_Line]) -> Iterator[list[_Line]]:
    """Runs of prose lines; text that continues a list item belongs to the list."""
    run: list[_Line] = []
    in_item = False
    for line in lines:
        in_item = line.kind == "item" or (in_item and line.kind == "text")
        if line.kind == "text" and not in_item:
            run.append(line)
        elif run:
            yield run
            run = []
    if run:
        yield run


def _long_paragraphs(text: str, lines: list[_Line]) -> Iterator[Finding]:
    for run in _paragraphs(lines):
        span = (run[0].start, run[-1].end)
        words = count_words(text, *span)
        if words > LONG_PARAGRAPH:
            message = f"Paragraph of {words} words: readers skim long blocks."
            yield finding(span, "warning", message, _break_hint(text, span))


def _break_hint(text: str, span: tuple[int, int]) -> str:
    """Suggest the sentence nearest the middle as the start of a new paragraph."""
    middle = (span[0] + span[1]) // 2
    starts = [s for s, _ in sentence_spans(text[: span[1]]) if span[0] < s]
    if not starts:
        return "Split it into shorter paragraphs, one idea each."
    best = min(starts, key=lambda s: abs(s - middle))
    opening = " ".join(text[best : best + 40].split()[:4])
    return f'Start a new paragraph at "{opening} …".'


def _wall_of_text(text: str, lines: list[_Line]) -> Finding | None:
    """A whole chunk without one blank line: nowhere for the eye to rest."""
    content = [i for i, line in enumerate(lines) if line.kind != "blank"]
    if not content or any(line.kind == "blank" for line in lines[content[0] : content[-1]]):
        return None
    span = (lines[content[0]].start, lines[content[-1]].end)
    words = count_words(text, *span)
    if words <= WALL_OF_TEXT:
        return None
    message = f"No paragraph breaks in {words} words."
    advice = "Break it into paragraphs of one idea each (50–150 words)."
    return finding(span, "warning", message, advice)


def _lists(lines: list[_Line]) -> Iterator[Finding]:
    for items, end in _list_blocks(lines):
        top = min(line.indent for line in items)
        if sum(1 for line in items if line.indent == top) == 1:
            message = "A list with a single item."
            advice = "Write it as a sentence, or add the missing items."
            yield finding((items[0].start, end), "info", message, advice)


def _list_blocks(lines: list[_Line]) -> Iterator[tuple[list[_Line], int]]:
    """Each list's item lines and where it ends; blank lines between items keep it open."""
    items: list[_Line] = []
    end = 0
    for index, line in enumerate(lines):
        if line.kind == "item":
            items.append(line)
            end = line.end
        elif items and _continues_list(lines, index):
            end = line.end if line.kind != "blank" else end
        elif items:
            yield items, end
            items = []
    if items:
        yield items, end


def _continues_list(lines: list[_Line], index: int) -> bool:
    line = lines[index]
    if line.kind == "blank":
        following = next((x for x in lines[index + 1 :] if x.kind != "blank"), None)
        return following is not None and (following.kind == "item" or following.indent >= 2)
    previous = lines[index - 1]
    return line.kind in ("text", "code") and (line.indent >= 2 or previous.kind != "blank")
