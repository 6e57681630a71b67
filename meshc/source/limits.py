"""Bounds on hostile input, and the refusal a reader raises when input crosses one.

The bounds are checked while reading, before anything large is built: a file too big
to read, nesting too deep, or aliases that multiply the document. Crossing one is
MESH004; input the reader cannot take for another reason (a tag, an unknown alias, a
second document) is MESH001.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEPTH_HELP = "flatten the structure; a mesh file needs only a few levels"


@dataclass(frozen=True)
class Limits:
    """Bounds on hostile input (MESH004), checked before anything is built."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 5_000_000


class Refused(Exception):
    """Raised inside the general reader at the event it cannot accept.

    ``mark`` is PyYAML's mark of that event (its position); ``bound`` tells a MESH004
    refusal (a limit crossed) from a MESH001 one (YAML that mesh files do not use).
    """

    def __init__(self, message: str, mark: Any, help_text: str, *, bound: bool = False) -> None:
        super().__init__(message)
        self.mark = mark
        self.help_text = help_text
        self.bound = bound
