"""The general reader: every YAML construct a mesh file may use, with positions.

It walks PyYAML's event stream (the C parser when available) instead of composing
nodes: the event stream is iterative, so no input can exhaust the stack, and every
bound on hostile input (size, depth, alias expansion) is checked while reading,
before anything large is built. Beyond what the fast reader covers (see
:mod:`meshc.source.fast` for exactly what that is and when it hands a file over), it
takes anchors, aliases, merge keys (``<<``) and the core schema's tags, reports
duplicate keys (MESH003, which YAML loaders silently collapse) with both positions,
and turns every problem into a diagnostic at its position.

With ``positions`` off it builds the same data without a span or a path (and raises
:class:`~meshc.source.text.NeedPositions` at a duplicate key); with it on it records
the span of every value and key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from meshc import codes
from meshc.diagnostics import Diagnostic, Span
from meshc.source.events import COLLECTION_TAGS, TAG_HELP, Loader, scalar
from meshc.source.hints import flow_bracket_hint
from meshc.source.limits import DEPTH_HELP, Limits, Refused
from meshc.source.positions import Path, Region, pack
from meshc.source.text import NeedPositions, Source, line_column


@dataclass
class _Frame:
    """A collection being built, with what is needed to place its children."""

    value: Any
    path: Path
    size: int = 1
    key: Any = None
    key_event: Any = None
    has_key: bool = False
    anchor: str | None = None
    merged: set[Any] | None = None


class _Reader:
    """Builds plain data from YAML events, recording spans and enforcing limits."""

    def __init__(self, source: Source, limits: Limits, positions: bool = True) -> None:
        self.source = source
        self.limits = limits
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.total = 0
        self.expanded = 0  # of ``total``, the nodes that aliases copied
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0
        self.max_nodes = limits.max_nodes
        self.positions = positions
        self.spans, self.key_spans = source.positions.values, source.positions.keys

    def run(self, loader: Any) -> None:
        """Read every event; ``get_event`` directly, which is faster than ``yaml.parse``."""
        get_event = loader.get_event
        while (event := get_event()) is not None:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self._leaf(scalar(event), event, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self._open(event, {} if kind is yaml.MappingStartEvent else [])
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                self._close(event)
            elif kind is yaml.AliasEvent:
                self._alias(event)
            elif kind is yaml.DocumentStartEvent:
                self.documents += 1
                if self.documents > 1:
                    raise Refused(
                        "a mesh file holds one YAML document; found a second one",
                        event.start_mark,
                        "remove the `---` separator and everything after it, or split the file",
                    )

    def _count(self, size: int, event: Any) -> None:
        self.total += size
        if self.total <= self.max_nodes:
            return
        if self.total - self.expanded > self.max_nodes:  # as many nodes without aliases
            raise Refused(
                f"the file holds more than {self.max_nodes:,} YAML nodes",
                event.start_mark,
                "a mesh needs far fewer: check that this is the file you meant, or "
                "split the mesh into smaller ones",
                bound=True,
            )
        raise Refused(
            f"aliases expand the file to more than {self.max_nodes:,} YAML nodes, "
            f"{self.expanded:,} of them copies of anchored parts",
            event.start_mark,
            "remove the nested aliases (`*name`) that multiply the document, or write "
            "the repeated part out once",
            bound=True,
        )

    def _place(self) -> Path | None:
        """Where the next value goes; None when it is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return top.path + (len(top.value),) if self.positions else ()
        if not top.has_key:
            return None
        return top.path + (top.key,) if self.positions else ()

    def _leaf(self, value: Any, event: Any, size: int) -> None:
        # The hot path (most events are scalars): _count, _place and _attach inlined.
        self.total += size
        if self.total > self.max_nodes:
            self._count(0, event)
        stack = self.stack
        if not stack or not self.positions:
            path: Path = ()
            if stack and type(stack[-1].value) is dict and not stack[-1].has_key:
                self._take_key(value, event)
                return
        elif type(stack[-1].value) is list:
            top = stack[-1]
            path = top.path + (len(top.value),)
        elif stack[-1].has_key:
            top = stack[-1]
            path = top.path + (top.key,)
        else:
            self._take_key(value, event)
            return
        if self.positions:
            self.spans[path] = pack(event.start_mark, event.end_mark)
        self._attach(value, size, path)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, size)

    def _take_key(self, key: Any, event: Any) -> None:
        top = self.stack[-1]
        if type(key) is dict or type(key) is list:
            raise Refused(
                "a mapping key must be a plain value, not a collection",
                event.start_mark,
                "use a string key",
            )
        top.key, top.key_event, top.has_key = key, event, True

    def _attach(self, value: Any, size: int, path: Path) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if type(top.value) is list:
            top.value.append(value)
            return
        self._set_key(top, value, path)

    def _set_key(self, top: _Frame, value: Any, path: Path) -> None:
        key, event = top.key, top.key_event
        top.has_key = False
        if key == "<<":
            self._merge(top, value, event)
            return
        merged = top.merged
        duplicate = key in top.value and (merged is None or key not in merged)
        if merged is not None and key in merged:
            merged.discard(key)  # set here, over what `<<` brought in
        if self.positions:
            region = pack(event.start_mark, event.end_mark)
            if duplicate:
                self._duplicate(top.path, key, region, self.key_spans[path])
            self.key_spans[path] = region
        elif duplicate:
            raise NeedPositions
        top.value[key] = value

    def _merge(self, top: _Frame, value: Any, event: Any) -> None:
        """``<<: *defaults``: copy keys the mapping does not set itself."""
        sources = value if isinstance(value, list) else [value]
        for item in sources:
            if not isinstance(item, dict):
                raise Refused(
                    "`<<` merges a mapping (or a list of mappings)",
                    event.start_mark,
                    "point `<<` at an anchored mapping: `<<: *defaults`",
                )
            merged = top.merged if top.merged is not None else set()
            top.merged = merged
            for k, v in item.items():
                if k not in top.value:
                    top.value[k] = v
                    merged.add(k)

    def _duplicate(self, path: Path, key: Any, region: Region, first: Region) -> None:
        where = ".".join(str(p) for p in path) or "the top level"
        self.source.diagnostics.append(
            codes.DUPLICATE_KEY.at(
                self.source.at(region),
                f"the key {key!r} appears twice in {where}; YAML would silently keep "
                "only the last one",
                help_text=f"remove one of the two {key!r} entries or merge them",
                related=[(self.source.at(first), f"first {key!r} is here")],
            )
        )

    def _open(self, event: Any, value: Any) -> None:
        if len(self.stack) >= self.limits.max_depth:
            raise Refused(
                f"nesting deeper than {self.limits.max_depth} levels",
                event.start_mark,
                DEPTH_HELP,
                bound=True,
            )
        if event.tag not in COLLECTION_TAGS:
            raise Refused(
                f"unsupported tag {event.tag!r}",
                event.start_mark,
                TAG_HELP,
            )
        path = self._place()
        if path is None:
            raise Refused(
                "a mapping key must be a plain value, not a collection",
                event.start_mark,
                "use a string key",
            )
        if self.positions:
            self.spans[path] = pack(event.start_mark, event.end_mark)
        self.stack.append(_Frame(value, path, anchor=event.anchor))

    def _close(self, event: Any) -> None:
        frame = self.stack.pop()
        if self.positions:
            start = self.spans[frame.path] >> 64  # keep the start, set the end
            end = event.end_mark
            self.spans[frame.path] = (start << 64) | (end.line << 32) | end.column
        self._count(0, event)
        self._attach(frame.value, frame.size, frame.path)
        if frame.anchor:
            self.anchors[frame.anchor] = (frame.value, frame.size)

    def _alias(self, event: Any) -> None:
        if event.anchor not in self.anchors:
            raise Refused(
                f"unknown alias *{event.anchor}",
                event.start_mark,
                f"define the anchor &{event.anchor} before using it",
            )
        value, size = self.anchors[event.anchor]
        self.expanded += size - 1  # copies: an alias is one node of the file itself
        self._leaf(value, event, size)


def read_pass(source: Source, limits: Limits, positions: bool) -> None:
    """Read ``source.text`` with the general reader; every problem becomes a diagnostic."""
    reader = _Reader(source, limits, positions)
    loader = None
    try:
        loader = Loader(source.text)
        reader.run(loader)
        source.data = reader.root
    except Refused as refused:
        code = codes.REFUSED if refused.bound else codes.BAD_YAML
        mark = refused.mark
        span = Span(source.path, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2)
        source.diagnostics.append(code.at(span, str(refused), help_text=refused.help_text))
    except yaml.MarkedYAMLError as err:
        source.diagnostics.append(_syntax_error(source, limits, err))
    except yaml.reader.ReaderError as err:  # a character YAML refuses: no mark, an offset
        line, column = line_column(source.text, err.position)
        span = Span(source.path, line, column, line, column + 1)
        found = source.text[err.position : err.position + 1]
        message = f"{err.reason}: {found!r} (U+{ord(found or chr(0)):04X}) is not allowed in YAML"
        help_text = "remove the character, or write it as an escape in a double-quoted string"
        source.diagnostics.append(codes.BAD_YAML.at(span, message, help_text=help_text))
    except yaml.YAMLError as err:  # other errors without marks
        span = Span(source.path, 1, 1, 1, 1)
        source.diagnostics.append(codes.BAD_YAML.at(span, str(err), help_text=_yaml_help("")))
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_error(source: Source, limits: Limits, err: yaml.MarkedYAMLError) -> Diagnostic:
    """MESH001 at the parser's mark, or MESH004 for libyaml's own bound on flow nesting."""
    mark = err.problem_mark or err.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = " ".join(filter(None, [err.context, err.problem])) or "invalid YAML"
    span = Span(source.path, line, column, line, column + 1)
    if "nesting depth" in message:
        refusal = f"nesting deeper than {limits.max_depth} levels ({message})"
        return codes.REFUSED.at(span, refusal, help_text=DEPTH_HELP)
    hint = flow_bracket_hint(source.line(line), column, message)
    if hint is not None:
        span = Span(source.path, line, hint.column, line, hint.end_column)
        return codes.BAD_YAML.at(span, hint.message, help_text=hint.help)
    return codes.BAD_YAML.at(span, message, help_text=_yaml_help(message))


def _yaml_help(message: str) -> str:
    if "tab" in message:
        return "indent with spaces; YAML does not allow tabs for indentation"
    if "mapping values are not allowed" in message:
        return "quote a value that contains ': ', or fix the indentation of this line"
    if "could not find expected ':'" in message:
        return "each mapping entry needs `key: value`; check the line above"
    return "fix the YAML syntax at this position (indentation, quotes, brackets)"
