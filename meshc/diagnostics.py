"""Diagnostics: spans, the record of one problem, and its text / JSON / SARIF forms.

The registry of codes lives in ``meshc.codes``; this module knows nothing about
meshes, only about positions in files and how to show them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A region of a file; lines and columns are 1-based and count characters."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Related:
    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, what, which code, and how to fix it.

    ``breaks`` names what an error reports broken (an agent, a stream, a type, and
    the name its "did you mean" offers); ``subjects`` what a finding is about. A
    finding about a name that an error breaks follows from that error, and
    :func:`fold_consequences` moves it under the error as a note. Neither takes part
    in equality, nor in the JSON and SARIF forms.
    """

    code: str
    severity: str
    message: str
    span: Span
    help: str = ""
    related: tuple[Related, ...] = field(default_factory=tuple)
    subjects: frozenset[str] = field(default=frozenset(), compare=False)
    breaks: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        s = self.span
        return (s.file, s.line, s.column, self.code, self.message)

    def to_json(self) -> dict[str, Any]:
        s = self.span
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": s.file,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "help": self.help,
            "related": [
                {
                    "file": r.span.file,
                    "line": r.span.line,
                    "column": r.span.column,
                    "message": r.message,
                }
                for r in self.related
            ],
        }


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position, with exact repeats removed."""
    return sorted(set(diags), key=Diagnostic.sort_key)


# ----------------------------------------------------------------------------- folding

# Notes a root error takes from its consequences before it only counts the rest.
FOLD_LIMIT = 8


def fold_consequences(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Each finding that follows from an error folded under it as a note.

    A finding follows from an error when one of its ``subjects`` is a name the error
    ``breaks``; it goes under the root of that chain (an agent unreachable because
    another unreachable agent feeds it, which a misspelt key broke, goes under the
    schema error). Of several errors that break a name, the first in the file is the
    parent; findings that follow from each other in a circle go under the first of
    them. So a consequence is never listed, let alone listed before its cause.
    """
    ordered = sort_diagnostics(diags)
    breakers: dict[str, list[int]] = {}
    for i, d in enumerate(ordered):
        if d.is_error:
            for name in d.breaks:
                breakers.setdefault(name, []).append(i)
    if not breakers:
        return ordered
    parents = [_parent(i, d, breakers) for i, d in enumerate(ordered)]
    roots = _roots(parents)
    folded: dict[int, list[Diagnostic]] = {}
    for i, root in enumerate(roots):
        if root != i:
            folded.setdefault(root, []).append(ordered[i])
    return [
        _with_notes(d, folded[i]) if i in folded else d
        for i, d in enumerate(ordered)
        if roots[i] == i
    ]


def _parent(i: int, diag: Diagnostic, breakers: dict[str, list[int]]) -> int | None:
    """The first error (by position) that breaks one of ``diag``'s subjects."""
    found = [j for name in diag.subjects for j in breakers.get(name, ()) if j != i]
    return min(found, default=None)


def _roots(parents: list[int | None]) -> list[int]:
    """Where each chain of parents ends: at a finding with no parent, or at the first
    finding of a circle. Each finding is walked once (the chains are remembered)."""
    roots: list[int | None] = [None] * len(parents)
    for start in range(len(parents)):
        path: list[int] = []
        on_path: dict[int, int] = {}
        node: int | None = start
        while node is not None and roots[node] is None and node not in on_path:
            on_path[node] = len(path)
            path.append(node)
            node = parents[node]
        known = roots[node] if node is not None else None
        if node is None:
            top = path[-1]
        elif known is not None:
            top = known
        else:
            top = min(path[on_path[node] :])  # a circle: its first finding
        for member in path:
            roots[member] = top
    return [r if r is not None else i for i, r in enumerate(roots)]


def _with_notes(root: Diagnostic, consequences: list[Diagnostic]) -> Diagnostic:
    notes = [
        Related(d.span, f"as a result, {d.message} [{d.code}]") for d in consequences[:FOLD_LIMIT]
    ]
    rest = len(consequences) - FOLD_LIMIT
    if rest > 0:
        more = f"and {rest} more finding{'s' if rest != 1 else ''} that follow from this one"
        notes.append(Related(root.span, more))
    return replace(root, related=root.related + tuple(notes))


# ----------------------------------------------------------------------------- text

_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "help": "\x1b[1;36m"}
_BOLD, _RESET, _DIM = "\x1b[1m", "\x1b[0m", "\x1b[2m"


def format_text(
    diag: Diagnostic, line_of: Callable[[str, int], str], *, color: bool = False
) -> str:
    """``file:line:col: error: message [CODE]``, the source line, a caret, help."""

    def paint(text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    s = diag.span
    head = f"{s.file}:{s.line}:{s.column}: "
    out = [
        paint(head, _BOLD)
        + paint(f"{diag.severity}:", _COLORS[diag.severity])
        + f" {diag.message} "
        + paint(f"[{diag.code}]", _BOLD)
    ]
    out.extend(_excerpt(s, line_of(s.file, s.line), color))
    for rel in diag.related:
        r = rel.span
        out.append(f"  note: {r.file}:{r.line}:{r.column}: {rel.message}")
    if diag.help:
        out.append("  " + paint("help:", _COLORS["help"]) + " " + diag.help)
    return "\n".join(out)


def _excerpt(s: Span, text: str, color: bool) -> list[str]:
    if not text.strip():
        return []
    text = text.replace("\t", " ")
    width = 1
    if s.end_line == s.line and s.end_column > s.column:
        width = s.end_column - s.column
    width = max(1, min(width, len(text) - s.column + 1))
    number = str(s.line)
    gutter = " " * len(number)
    caret = " " * (s.column - 1) + "^" + "~" * (width - 1)
    if color:
        caret = f"{_COLORS['error']}{caret}{_RESET}"
        number = f"{_DIM}{number}{_RESET}"
    return [f" {number} | {text}", f" {gutter} | {caret}"]


def format_summary(diags: Sequence[Diagnostic], files: int) -> str:
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    if not diags:
        return f"{files} file{'s' if files != 1 else ''} valid"

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'s' if n != 1 else ''}"

    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')} in {plural(files, 'file')}"


# ----------------------------------------------------------------------------- json / sarif


def format_json(files: Sequence[str], diags: Sequence[Diagnostic]) -> str:
    payload = {"files": list(files), "diagnostics": [d.to_json() for d in diags]}
    return json.dumps(payload, indent=2, ensure_ascii=False)


def format_sarif(
    diags: Sequence[Diagnostic], rules: Sequence[tuple[str, str, str]], version: str
) -> str:
    """SARIF 2.1.0; ``rules`` are (code, short title, full explanation)."""
    index = {code: i for i, (code, _, _) in enumerate(rules)}
    results = []
    for d in diags:
        s = d.span
        result: dict[str, Any] = {
            "ruleId": d.code,
            "level": "error" if d.is_error else "warning",
            "message": {"text": d.message + (f"\nhelp: {d.help}" if d.help else "")},
            "locations": [_sarif_location(s)],
        }
        if d.code in index:
            result["ruleIndex"] = index[d.code]
        if d.related:
            result["relatedLocations"] = [
                {**_sarif_location(r.span), "id": i, "message": {"text": r.message}}
                for i, r in enumerate(d.related)
            ]
        results.append(result)
    run = {
        "tool": {
            "driver": {
                "name": "meshc",
                "version": version,
                "informationUri": "https://pypi.org/project/meshc/",
                "rules": [
                    {
                        "id": code,
                        "shortDescription": {"text": title},
                        "fullDescription": {"text": explain},
                    }
                    for code, title, explain in rules
                ],
            }
        },
        "results": results,
    }
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _sarif_location(s: Span) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": s.file},
            "region": {
                "startLine": s.line,
                "startColumn": s.column,
                "endLine": s.end_line,
                "endColumn": s.end_column,
            },
        }
    }
