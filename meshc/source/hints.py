"""Better words for YAML syntax errors that mesh files cause in a known way.

``Triage: {verdicts: list[Verdict]}`` is the classic: inside a flow mapping ``{…}``
a plain value may not hold ``[``, so YAML reads it as the start of a list and stops
with "did not find expected ',' or '}'", pointing at the bracket. What the user
needs to hear is that a type expression there must be quoted, and where it starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z0-9_]")
_OPTIONAL = re.compile(r"\s*\|\s*None\b")
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*$")


@dataclass(frozen=True)
class Hint:
    """A rewritten error: 1-based columns of the expression, the message and the fix."""

    column: int
    end_column: int
    message: str
    help: str


def flow_bracket_hint(line: str, column: int, message: str) -> Hint | None:
    """The hint for a type expression with ``[`` in a flow collection, if that is what
    stopped YAML at ``column`` (1-based) of ``line``; None for any other error."""
    at = column - 1
    if "flow" not in message or not 0 < at < len(line) or line[at] != "[":
        return None
    if not _WORD.match(line[at - 1]):
        return None  # `[` after a word is `list[…]`; anything else is some other error
    start = at
    while start > 0 and _WORD.match(line[start - 1]):
        start -= 1
    end = _closing(line, at)
    if end is None:
        return None
    optional = _OPTIONAL.match(line, end)
    end = optional.end() if optional else end
    expr = line[start:end]
    key = _KEY.search(line[:start])
    quoted = f'{key.group(1)}: "{expr}"' if key else f'"{expr}"'
    inside = "a flow mapping `{…}`" if "mapping" in message else "a flow sequence `[…]`"
    return Hint(
        start + 1,
        end + 1,
        f"the type expression `{expr}` is inside {inside}, where YAML reads `[` as the "
        "start of a list",
        f"quote the type expression: `{quoted}` (or write the type's fields one per line)",
    )


def _closing(line: str, opening: int) -> int | None:
    """The index just past the bracket that closes the one at ``opening``."""
    depth = 0
    for i in range(opening, len(line)):
        depth += {"[": 1, "]": -1}.get(line[i], 0)
        if depth == 0:
            return i + 1
    return None
