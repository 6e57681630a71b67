"""The text of a mesh file and the positions of its nodes.

A :class:`Source` is what the later steps receive: the data, the text lines that a
diagnostic quotes, and the span of every path. Positions are cheap to keep only when
packed: a big file has millions of nodes, so each region is one int and a
:class:`~meshc.diagnostics.Span` is made only when a diagnostic asks for one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshc import codes
from meshc.diagnostics import Diagnostic, Span
from meshc.source import positions
from meshc.source.events import Loader
from meshc.source.positions import MASK, Path, Positions, Region


class NeedPositions(Exception):
    """Raised by a reader without positions when a diagnostic needs them (MESH003)."""


@dataclass
class Source:
    """A loaded file: its data, its text lines and the span of every path.

    Positions are indexed on first use (:mod:`meshc.source.positions`): a valid mesh
    never asks for one, and reading without them is much faster and lighter on a big
    file. ``indexer`` is what reads them when first asked (set by the loader; None once
    indexed, or when the positions were recorded while reading).
    """

    path: str
    text: str
    data: Any = None
    positions: Positions = field(default_factory=Positions)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _lines: list[str] | None = None
    indexer: Callable[[Source], None] | None = field(default=None, repr=False, compare=False)

    def _indexed(self) -> None:
        if self.indexer is not None:
            indexer, self.indexer = self.indexer, None
            indexer(self)

    def span(self, path: Path) -> Span:
        """The span of a path's value, or of its nearest ancestor that has one."""
        if not path and self.indexer is not None:
            return self._root()  # the whole document: no index needed
        self._indexed()
        while path:
            found = self.positions.value(path)
            if found is not None:
                return self.at(found)
            path = path[:-1]
        root = self.positions.values.get(())
        return self.at(root) if root is not None else Span(self.path, 1, 1, 1, 1)

    def key_span(self, path: Path) -> Span:
        """The span of the key that introduces ``path`` (falls back to the value)."""
        self._indexed()
        found = self.positions.keys.get(path)
        return self.at(found) if found is not None else self.span(path)

    def at(self, region: Region) -> Span:
        line, column = region >> 96, (region >> 64) & MASK
        end_line, end_column = (region >> 32) & MASK, region & MASK
        return Span(self.path, line + 1, column + 1, end_line + 1, end_column + 1)

    def _root(self) -> Span:
        loader = Loader(self.text)
        try:
            region = positions.root(loader, self.text)
        finally:
            loader.dispose()
        return self.at(region) if region is not None else Span(self.path, 1, 1, 1, 1)

    def line(self, number: int) -> str:
        if self._lines is None:
            self._lines = self.text.splitlines()
        if 1 <= number <= len(self._lines):
            return self._lines[number - 1]
        return ""


def decode(path: str, raw: bytes) -> tuple[str | None, Diagnostic | None]:
    """The file's text, or MESH001 at the first byte that is not UTF-8 (a BOM is dropped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        prefix = raw[: err.start].decode("utf-8", errors="replace")
        line = prefix.count("\n") + 1
        column = len(prefix) - (prefix.rfind("\n") + 1) + 1
        span = Span(path, line, column, line, column + 1)
        return None, codes.BAD_YAML.at(
            span,
            f"the file is not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start}",
            help_text="save the file as UTF-8",
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
