"""What every review lens shares: the task shape, findings and the lens result.

Each lens is its own agent with its own handler module; none imports another. They
meet only here, in helpers that know nothing about any particular lens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Literal, Protocol, TypedDict

Severity = Literal["info", "warning", "error"]


class ReviewTask(Protocol):
    """The review task as the runtime hands it over (a pydantic model)."""

    @property
    def doc_id(self) -> str: ...

    @property
    def chunk_id(self) -> int: ...

    @property
    def text(self) -> str: ...


class Finding(TypedDict):
    """One problem: ``text[start:end]`` is the flagged span (end exclusive)."""

    start: int
    end: int
    severity: Severity
    message: str
    suggestion: str


class LensResult(TypedDict):
    """The output of one lens for one chunk."""

    doc_id: str
    chunk_id: int
    lens: str
    findings: list[Finding]


def finding(span: tuple[int, int], severity: Severity, message: str, suggestion: str) -> Finding:
    """Build a finding; one line of message, whatever line breaks the quoted text had."""
    start, end = span
    return {
        "start": start,
        "end": end,
        "severity": severity,
        "message": " ".join(message.split()),
        "suggestion": suggestion,
    }


def lens_result(task: ReviewTask, lens: str, findings: Iterable[Finding]) -> LensResult:
    """Wrap findings, sorted and without duplicates, so equal inputs give equal bytes."""
    return {
        "doc_id": task.doc_id,
        "chunk_id": task.chunk_id,
        "lens": lens,
        "findings": sort_findings(findings),
    }


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Position order, then message; an identical finding found twice is kept once."""
    unique = {(f["start"], f["end"], f["message"]): f for f in findings}
    return [unique[key] for key in sorted(unique)]


def match_case(replacement: str, original: str) -> str:
    """Give a replacement the capitalisation of the word it replaces ("Recieve" → "Receive")."""
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def starts_sentence(text: str, start: int) -> bool:
    """Whether only markup, quotes or spaces stand between ``start`` and a sentence end."""
    index = start
    while index > 0 and text[index - 1] in " \t\"'“‘(*_>#-":
        index -= 1
    return index == 0 or text[index - 1] in ".!?:\n"


def phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive alternation of whole-word phrases, longest first.

    Longest first so that "a large number of" wins over "number of"; flexible spaces so
    that a phrase wrapped over two lines is still found, and either apostrophe.
    """
    ordered = sorted(set(phrases), key=lambda p: (-len(p), p))
    body = "|".join(r"\s+".join(map(_escape, p.split())) for p in ordered)
    return re.compile(rf"(?<![\w'’-])(?:{body})(?![\w'’-])", re.IGNORECASE)


def phrases(spec: str) -> list[str]:
    """Phrases written as one "|"-separated string, for compact phrase lists."""
    return [p.strip() for p in spec.split("|") if p.strip()]


def _escape(word: str) -> str:
    """Escape a word, letting a straight apostrophe also match a curly one."""
    return re.escape(word).replace("'", "['’]")


def normal(phrase: str) -> str:
    """A matched phrase as a table key: lower case, single spaces, straight apostrophes."""
    return " ".join(phrase.lower().replace("’", "'").split())


def table_findings(
    pattern: re.Pattern[str],
    text: str,
    build: Callable[[re.Match[str]], Finding | None],
) -> list[Finding]:
    """Run one pattern over the text and let ``build`` turn each match into a finding."""
    found = (build(m) for m in pattern.finditer(text))
    return [f for f in found if f is not None]
