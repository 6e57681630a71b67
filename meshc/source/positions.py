"""Where every node of a mesh file is, worked out only when a diagnostic asks.

A valid mesh never needs a position, so the loader reads without them (see
:mod:`meshc.source.load`); an invalid one needs a few. This module indexes a file that was
already read without problems, in one pass over its YAML events that builds no data:
values and keys of mappings by path, and the items of each sequence in two arrays
(start and end, 8 bytes each) rather than a dict entry of a path tuple per item, which
is what a dense list of millions of short items is made of.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]
# Where a node is: the parser's 0-based line, column, end line and end column packed
# into one int (32 bits each). One int is a third of the memory of a tuple of four, and
# a Span is made only when a diagnostic asks.
Region = int
MASK = (1 << 32) - 1


def pack(start: Any, end: Any) -> Region:
    """The region from PyYAML's start mark to its end mark."""
    packed: int = (start.line << 96) | (start.column << 64) | (end.line << 32) | end.column
    return packed


def _point(mark: Any) -> int:
    point: int = (mark.line << 32) | mark.column
    return point


@dataclass
class Positions:
    """The regions of a file's nodes: ``values`` and ``keys`` by path, and the items
    of each sequence (by the sequence's path) as arrays of packed start and end points."""

    values: dict[Path, Region] = field(default_factory=dict)
    keys: dict[Path, Region] = field(default_factory=dict)
    items: dict[Path, tuple[array[int], array[int]]] = field(default_factory=dict)

    def value(self, path: Path) -> Region | None:
        found = self.values.get(path)
        if found is not None or not path or type(path[-1]) is not int:
            return found
        arrays = self.items.get(path[:-1])
        index = path[-1]
        if arrays is None or not 0 <= index < len(arrays[0]):
            return None
        return (arrays[0][index] << 64) | arrays[1][index]


@dataclass(frozen=True)
class _Point:
    """A position, shaped like the parser's marks."""

    line: int
    column: int


def root(loader: Any, text: str) -> Region | None:
    """The root node's region without an index: from the first node event (the first
    event the parser gives after the stream and document starts) to the end of the
    text, where the root of a file read without a problem ends. None for no node."""
    while (event := loader.get_event()) is not None:
        if isinstance(event, yaml.NodeEvent):
            body = text.rstrip()
            end = _Point(body.count("\n"), len(body) - (body.rfind("\n") + 1))
            return pack(event.start_mark, end)
    return None


_SCALAR, _ALIAS = yaml.ScalarEvent, yaml.AliasEvent
_MAP_START, _SEQ_START = yaml.MappingStartEvent, yaml.SequenceStartEvent
_MAP_END, _SEQ_END = yaml.MappingEndEvent, yaml.SequenceEndEvent
_NODES = frozenset({_SCALAR, _ALIAS, _MAP_START, _SEQ_START})
_NO_KEY = object()


class _Frame:
    """An open collection: its path, and for a mapping the key waiting for its value,
    for a sequence its arrays; ``slot`` is where its own end goes in its parent."""

    __slots__ = ("path", "key", "arrays", "slot")

    def __init__(self, path: Path, arrays: tuple[array[int], array[int]] | None) -> None:
        self.path = path
        self.key: Any = _NO_KEY
        self.arrays = arrays
        self.slot: tuple[array[int], int] | None = None


def index(loader: Any, key_of: Any) -> Positions:
    """Index the events of ``loader`` (a file the loader already read without error).

    ``key_of(event)`` resolves a scalar key as the data was read, so paths match it;
    anchored scalars are kept so an alias used as a key resolves too. The items of a
    sequence, most of the events of a big file, take the first and shortest branch.
    """
    found = Positions()
    values, keys, items = found.values, found.keys, found.items
    anchors: dict[str, Any] = {}
    stack: list[_Frame] = []
    top: _Frame | None = None
    # The appends of the open sequence's arrays, if the innermost collection is one.
    add_start: Callable[[int], None] | None = None
    add_end: Callable[[int], None] | None = None
    get_event = loader.get_event
    while (event := get_event()) is not None:
        kind = type(event)
        if add_start is not None and add_end is not None and (kind is _SCALAR or kind is _ALIAS):
            start, end = event.start_mark, event.end_mark
            add_start((start.line << 32) | start.column)
            add_end((end.line << 32) | end.column)
            if event.anchor is not None and kind is _SCALAR:
                anchors[event.anchor] = key_of(event)
            continue
        if kind is _MAP_END or kind is _SEQ_END:
            _close(stack.pop(), event.end_mark, values)
        elif kind in _NODES:
            if top is not None and top.arrays is None and top.key is _NO_KEY:
                _key(top, event, kind, anchors, keys, key_of)
                continue
            frame = _node(top, event, kind, values, items)
            if kind is _SCALAR and event.anchor is not None:
                anchors[event.anchor] = key_of(event)
            if frame is not None:
                stack.append(frame)
        else:
            continue  # stream and document events
        top = stack[-1] if stack else None
        arrays = top.arrays if top is not None else None
        add_start, add_end = (arrays[0].append, arrays[1].append) if arrays else (None, None)
    return found


def _key(
    top: _Frame, event: Any, kind: type, anchors: dict[str, Any], keys: dict[Path, Region],
    key_of: Any,
) -> None:  # fmt: skip
    """A mapping's key: the path of the value to come."""
    key: Any = anchors.get(event.anchor) if kind is _ALIAS else key_of(event)
    if kind is _SCALAR and event.anchor is not None:
        anchors[event.anchor] = key
    top.key = key
    if key != "<<":  # a merge key is not a key of the mapping
        keys[(*top.path, key)] = pack(event.start_mark, event.end_mark)


def _node(
    top: _Frame | None, event: Any, kind: type, values: dict[Path, Region],
    items: dict[Path, tuple[array[int], array[int]]],
) -> _Frame | None:  # fmt: skip
    """Place a node (a mapping's value, a sequence's item or the root); a new frame
    when it opens a collection."""
    slot = None
    if top is None:
        path: Path = ()
    elif top.arrays is None:
        path, top.key = (*top.path, top.key), _NO_KEY
    else:
        starts, ends = top.arrays
        path = (*top.path, len(starts))
        starts.append(_point(event.start_mark))
        ends.append(_point(event.end_mark))
        slot = (ends, len(ends) - 1)
    if slot is None:
        values[path] = pack(event.start_mark, event.end_mark)
    if kind is not _MAP_START and kind is not _SEQ_START:
        return None
    arrays = (array("Q"), array("Q")) if kind is _SEQ_START else None
    if arrays is not None:
        items[path] = arrays
    frame = _Frame(path, arrays)
    frame.slot = slot
    return frame


def _close(frame: _Frame, end: Any, values: dict[Path, Region]) -> None:
    """A collection ends: its end goes where its start went."""
    if frame.slot is not None:
        frame.slot[0][frame.slot[1]] = _point(end)
    else:
        values[frame.path] = (values[frame.path] >> 64 << 64) | _point(end)
