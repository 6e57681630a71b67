"""The fixture corpus: one mesh file per scenario, its expected diagnostics written inside.

Expectations are YAML comments, so the file stays a mesh that `meshc validate` reads:

* ``# E: MESH103`` (an error) or ``# W: MESH106`` (a warning) at the end of the line
  the diagnostic points at; several per line are allowed (``# E: MESH108, W: MESH106``);
* ``# N: MESH107`` for a finding that follows from another error and is folded under
  it as a note (``note: …:LINE:COL: as a result, … [MESH107]``), never listed itself;
* header lines for what a line comment cannot say: ``# expect: MESH001@4`` (a file
  that is not UTF-8, an error at the end of the file), ``# resolve: true`` (validate
  with ``--resolve``, from the fixtures folder so that ``handlers.*`` imports) and
  ``# max-bytes: 200`` (a lower size bound).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshc import codes
from meshc.diagnostics import Diagnostic

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parents[2]

_INLINE = re.compile(r"\b([EWN]):\s*(MESH\d{3})\b")
_FOLDED = re.compile(r"\[(MESH\d{3})\]$")  # the code at the end of a folded finding's note
_EXPECT = re.compile(r"^#\s*expect:\s*(MESH\d{3})@(\d+)\s*$")
_RESOLVE = re.compile(r"^#\s*resolve:\s*true\s*$")
_MAX_BYTES = re.compile(r"^#\s*max-bytes:\s*(\d+)\s*$")

Key = tuple[str, int, str]  # (code, line, "E", "W" or "N")


@dataclass(frozen=True)
class Case:
    path: Path
    expected: Counter[Key]
    resolve: bool = False
    max_bytes: int | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def has_errors(self) -> bool:
        return any(sev == "E" for _, _, sev in self.expected)

    def cli_args(self) -> list[str]:
        args = ["validate", str(self.path)]
        if self.resolve:
            args.append("--resolve")
        if self.max_bytes is not None:
            args += ["--max-bytes", str(self.max_bytes)]
        return args


def letter(severity: str) -> str:
    return "E" if severity == "error" else "W"


def load_case(path: Path) -> Case:
    text = path.read_bytes().decode("utf-8", errors="replace")
    expected: Counter[Key] = Counter()
    resolve, max_bytes = False, None
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _EXPECT.match(line):
            code = m.group(1)
            expected[(code, int(m.group(2)), letter(codes.REGISTRY[code].severity))] += 1
            continue
        if _RESOLVE.match(line):
            resolve = True
            continue
        if m := _MAX_BYTES.match(line):
            max_bytes = int(m.group(1))
            continue
        comment = line.partition("#")[2]
        for sev, code in _INLINE.findall(comment):
            expected[(code, number, sev)] += 1
    return Case(path, expected, resolve, max_bytes)


def all_cases() -> list[Case]:
    return [load_case(p) for p in sorted(FIXTURES.glob("*.yaml"))]


def actual(diags: list[Diagnostic]) -> Counter[Key]:
    """What was reported: each diagnostic, and each finding folded into one as a note."""
    found = Counter((d.code, d.span.line, letter(d.severity)) for d in diags)
    for d in diags:
        for note in d.related:
            if m := _FOLDED.search(note.message):
                found[(m.group(1), note.span.line, "N")] += 1
    return found


def actual_json(report: dict[str, Any]) -> list[Key]:
    """``actual`` of ``meshc validate --format json``'s output, sorted."""
    found = []
    for d in report["diagnostics"]:
        found.append((d["code"], d["line"], d["severity"][0].upper()))
        for note in d["related"]:
            if m := _FOLDED.search(note["message"]):
                found.append((m.group(1), note["line"], "N"))
    return sorted(found)


def mismatch(case: Case, diags: list[Diagnostic]) -> str:
    """A readable account of what differs, with each unexpected diagnostic's message."""
    got = actual(diags)
    missing = case.expected - got
    extra = got - case.expected
    lines = [f"{case.path.name}: diagnostics differ from the `# E:`/`# W:` comments"]
    for code, line, sev in sorted(missing.elements(), key=lambda k: (k[1], k[0])):
        lines.append(f"  expected, not reported: line {line}: {sev}: {code}")
    for d in diags:
        if extra[(d.code, d.span.line, letter(d.severity))] > 0:
            lines.append(
                f"  reported, not expected: line {d.span.line}:{d.span.column}: "
                f"{letter(d.severity)}: {d.code} {d.message}"
            )
        for note in d.related:
            m = _FOLDED.search(note.message)
            if m and extra[(m.group(1), note.span.line, "N")] > 0:
                lines.append(f"  folded, not expected: line {note.span.line}: N: {note.message}")
    where = case.path.relative_to(FIXTURES) if case.resolve else case.path.relative_to(ROOT)
    args = [str(where), *case.cli_args()[2:]]
    run_from = " (from tests/validator/fixtures)" if case.resolve else ""
    lines.append(f"  see them all{run_from}: meshc validate " + " ".join(args))
    return "\n".join(lines)
