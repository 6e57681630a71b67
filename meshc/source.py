"""Read a mesh file into plain data while keeping the position of every node.

The loader walks PyYAML's event stream (the C parser when available) instead of
composing nodes: the event stream is iterative, so no input can exhaust the stack,
and every bound on hostile input (size, depth, alias expansion) is checked while
reading, before anything large is built. Duplicate keys, which YAML loaders
silently collapse, are reported here.

Scalars follow the YAML 1.2 core schema: ``yes``/``no``/``on``/``off`` stay strings,
only ``true``/``false`` are booleans.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from meshc.diagnostics import Diagnostic, Span

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Limits:
    """Bounds on hostile input (MESH004), checked before anything is built."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 5_000_000


@dataclass
class Source:
    """A loaded file: its data, its text lines and the span of every path."""

    path: str
    text: str
    data: Any = None
    spans: dict[Path, Span] = field(default_factory=dict)
    key_spans: dict[Path, Span] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _lines: list[str] | None = None

    def span(self, path: Path) -> Span:
        """The span of a path's value, or of its nearest ancestor that has one."""
        while path:
            found = self.spans.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.spans.get((), Span(self.path, 1, 1, 1, 1))

    def key_span(self, path: Path) -> Span:
        """The span of the key that introduces ``path`` (falls back to the value)."""
        found = self.key_spans.get(path)
        return found if found is not None else self.span(path)

    def line(self, number: int) -> str:
        if self._lines is None:
            self._lines = self.text.splitlines()
        if 1 <= number <= len(self._lines):
            return self._lines[number - 1]
        return ""


class _Refused(Exception):
    """Raised inside the reader when a bound is crossed."""

    def __init__(self, message: str, mark: Any, help_text: str, *, bound: bool = False) -> None:
        super().__init__(message)
        self.mark = mark
        self.help_text = help_text
        self.bound = bound  # a MESH004 refusal rather than a MESH001 syntax problem


_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_INT_OTHER = re.compile(r"^(0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf")}
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


def _plain_scalar(value: str) -> Any:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if value in _NULLS:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _INT_OTHER.match(value):
        return int(value, 0)
    if _FLOAT.match(value) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    lowered = value.lower()
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    if lowered == ".nan":
        return float("nan")
    return value


_TAGGED = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
}

_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _scalar(event: yaml.ScalarEvent) -> Any:
    tag = event.tag
    if tag in (None, "!"):
        return _plain_scalar(event.value) if event.implicit[0] else event.value
    if tag in _TAGGED:
        try:
            return _TAGGED[tag](event.value)
        except ValueError:
            raise _Refused(
                f"the scalar {event.value!r} cannot be read as {tag.rsplit(':', 1)[-1]}",
                event.start_mark,
                "remove the tag or fix the value",
            ) from None
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return _plain_scalar(event.value)
    raise _Refused(
        f"unsupported tag {tag!r}",
        event.start_mark,
        "mesh files use plain YAML values; remove the tag",
    )


def _span(path: str, event: Any) -> Span:
    start, end = event.start_mark, event.end_mark
    return Span(path, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


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
    seen: dict[Any, Span] | None = None
    merged: set[Any] | None = None


class _Reader:
    """Builds plain data from YAML events, recording spans and enforcing limits."""

    def __init__(self, source: Source, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.total = 0
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0

    def run(self, events: Iterator[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                self._leaf(_scalar(event), event, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self._open(event, {} if kind is yaml.MappingStartEvent else [])
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                self._close(event)
            elif kind is yaml.AliasEvent:
                self._alias(event)
            elif kind is yaml.DocumentStartEvent:
                self.documents += 1
                if self.documents > 1:
                    raise _Refused(
                        "a mesh file holds one YAML document; found a second one",
                        event.start_mark,
                        "remove the `---` separator and everything after it, or split the file",
                    )

    def _count(self, size: int, event: Any) -> None:
        self.total += size
        if self.total > self.limits.max_nodes:
            raise _Refused(
                f"the file expands to more than {self.limits.max_nodes:,} YAML nodes "
                "(alias expansion or sheer size)",
                event.start_mark,
                "remove the nested aliases (`*name`) that multiply the document",
                bound=True,
            )

    def _place(self, event: Any) -> Path | None:
        """Where the next value goes; None when it is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if not top.has_key:
            return None
        return (*top.path, top.key)

    def _leaf(self, value: Any, event: Any, size: int) -> None:
        self._count(size, event)
        path = self._place(event)
        if path is None:
            self._take_key(value, event)
            return
        self.source.spans[path] = _span(self.source.path, event)
        self._attach(value, size)
        if getattr(event, "anchor", None):
            self.anchors[event.anchor] = (value, size)

    def _take_key(self, key: Any, event: Any) -> None:
        top = self.stack[-1]
        if isinstance(key, dict | list):
            raise _Refused(
                "a mapping key must be a plain value, not a collection",
                event.start_mark,
                "use a string key",
            )
        top.key, top.key_event, top.has_key = key, event, True

    def _attach(self, value: Any, size: int) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
            return
        self._set_key(top, value)

    def _set_key(self, top: _Frame, value: Any) -> None:
        key, event = top.key, top.key_event
        top.has_key = False
        if key == "<<":
            self._merge(top, value, event)
            return
        span = _span(self.source.path, event)
        seen = top.seen if top.seen is not None else {}
        top.seen = seen
        if key in seen:
            self._duplicate(top.path, key, span, seen[key])
        elif top.merged is not None and key in top.merged:
            top.merged.discard(key)
        seen[key] = span
        self.source.key_spans[(*top.path, key)] = span
        top.value[key] = value

    def _merge(self, top: _Frame, value: Any, event: Any) -> None:
        """``<<: *defaults``: copy keys the mapping does not set itself."""
        sources = value if isinstance(value, list) else [value]
        for item in sources:
            if not isinstance(item, dict):
                raise _Refused(
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

    def _duplicate(self, path: Path, key: Any, span: Span, first: Span) -> None:
        from meshc import codes

        where = ".".join(str(p) for p in path) or "the top level"
        self.source.diagnostics.append(
            codes.DUPLICATE_KEY.at(
                span,
                f"the key {key!r} appears twice in {where}; YAML would silently keep "
                "only the last one",
                help_text=f"remove one of the two {key!r} entries or merge them",
                related=[(first, f"first {key!r} is here")],
            )
        )

    def _open(self, event: Any, value: Any) -> None:
        if len(self.stack) >= self.limits.max_depth:
            raise _Refused(
                f"nesting deeper than {self.limits.max_depth} levels",
                event.start_mark,
                "flatten the structure; a mesh file needs only a few levels",
                bound=True,
            )
        if event.tag not in _COLLECTION_TAGS:
            raise _Refused(
                f"unsupported tag {event.tag!r}",
                event.start_mark,
                "mesh files use plain YAML values; remove the tag",
            )
        path = self._place(event)
        if path is None:
            raise _Refused(
                "a mapping key must be a plain value, not a collection",
                event.start_mark,
                "use a string key",
            )
        self.source.spans[path] = _span(self.source.path, event)
        self.stack.append(_Frame(value, path, anchor=event.anchor))

    def _close(self, event: Any) -> None:
        frame = self.stack.pop()
        start = self.source.spans[frame.path]
        end = event.end_mark
        self.source.spans[frame.path] = Span(
            start.file, start.line, start.column, end.line + 1, end.column + 1
        )
        self._count(0, event)
        self._attach(frame.value, frame.size)
        if frame.anchor:
            self.anchors[frame.anchor] = (frame.value, frame.size)

    def _alias(self, event: Any) -> None:
        if event.anchor not in self.anchors:
            raise _Refused(
                f"unknown alias *{event.anchor}",
                event.start_mark,
                f"define the anchor &{event.anchor} before using it",
            )
        value, size = self.anchors[event.anchor]
        self._leaf(value, event, size)


def _decode(path: str, raw: bytes) -> tuple[str | None, Diagnostic | None]:
    from meshc import codes

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


def load_bytes(path: str, raw: bytes, limits: Limits | None = None) -> Source:
    """Load a mesh file's bytes; problems become diagnostics on the Source."""
    from meshc import codes

    limits = limits or Limits()
    if len(raw) > limits.max_bytes:
        source = Source(path, "")
        source.diagnostics.append(
            codes.REFUSED.at(
                Span(path, 1, 1, 1, 1),
                f"the file is {len(raw):,} bytes; the limit is {limits.max_bytes:,}",
                help_text="split the mesh, or raise the limit with --max-bytes",
            )
        )
        return source
    text, problem = _decode(path, raw)
    source = Source(path, text or "")
    if problem is not None:
        source.diagnostics.append(problem)
        return source
    _read(source, limits)
    return source


def _read(source: Source, limits: Limits) -> None:
    from meshc import codes

    reader = _Reader(source, limits)
    enabled = gc.isenabled()
    gc.disable()  # the cyclic GC makes loading big files super-linear (FACTS.md)
    try:
        reader.run(yaml.parse(source.text, Loader=_Loader))
        source.data = reader.root
    except _Refused as refused:
        code = codes.REFUSED if refused.bound else codes.BAD_YAML
        mark = refused.mark
        span = Span(source.path, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2)
        diag = code.at(span, str(refused), help_text=refused.help_text)
        source.diagnostics.append(diag)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(filter(None, [err.context, err.problem])) or "invalid YAML"
        span = Span(source.path, line, column, line, column + 1)
        if "nesting depth" in message:  # libyaml's own bound on flow nesting
            refusal = f"nesting deeper than {limits.max_depth} levels ({message})"
            help_text = "flatten the structure; a mesh file needs only a few levels"
            source.diagnostics.append(codes.REFUSED.at(span, refusal, help_text=help_text))
        else:
            help_text = _yaml_help(message)
            source.diagnostics.append(codes.BAD_YAML.at(span, message, help_text=help_text))
    except yaml.YAMLError as err:  # reader errors without marks
        span = Span(source.path, 1, 1, 1, 1)
        source.diagnostics.append(codes.BAD_YAML.at(span, str(err), help_text=_yaml_help("")))
    finally:
        if enabled:
            gc.enable()


def _yaml_help(message: str) -> str:
    if "tab" in message:
        return "indent with spaces; YAML does not allow tabs for indentation"
    if "mapping values are not allowed" in message:
        return "quote a value that contains ': ', or fix the indentation of this line"
    if "could not find expected ':'" in message:
        return "each mapping entry needs `key: value`; check the line above"
    return "fix the YAML syntax at this position (indentation, quotes, brackets)"


def load_file(path: str, limits: Limits | None = None) -> Source:
    """Load a file from disk. OSError is left to the caller (exit code 2)."""
    limits = limits or Limits()
    with open(path, "rb") as handle:
        raw = handle.read(limits.max_bytes + 1)
    return load_bytes(path, raw, limits)
