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
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from meshc.diagnostics import Diagnostic, Span

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]
# Where a node is: the parser's 0-based line, column, end line and end column packed
# into one int (32 bits each). A Span is made only when a diagnostic asks: a big file
# has millions of nodes, and one int is a third of the memory of a tuple of four.
Region = int
_BITS = 32
_MASK = (1 << _BITS) - 1


def _pack(start: Any, end: Any) -> Region:
    packed: int = (start.line << 96) | (start.column << 64) | (end.line << 32) | end.column
    return packed


@dataclass(frozen=True)
class Limits:
    """Bounds on hostile input (MESH004), checked before anything is built."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 5_000_000


@dataclass
class Source:
    """A loaded file: its data, its text lines and the span of every path.

    Positions are indexed on first use: a valid mesh never asks for one, and reading
    without them is much faster and lighter on a big file (see ``_read``).
    """

    path: str
    text: str
    data: Any = None
    spans: dict[Path, Region] = field(default_factory=dict)
    key_spans: dict[Path, Region] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _lines: list[str] | None = None
    _unindexed: Limits | None = field(default=None, repr=False)  # read again with these

    def _indexed(self) -> None:
        if self._unindexed is not None:
            limits, self._unindexed = self._unindexed, None
            _index(self, limits)

    def span(self, path: Path) -> Span:
        """The span of a path's value, or of its nearest ancestor that has one."""
        self._indexed()
        while path:
            found = self.spans.get(path)
            if found is not None:
                return self.at(found)
            path = path[:-1]
        root = self.spans.get(())
        return self.at(root) if root is not None else Span(self.path, 1, 1, 1, 1)

    def key_span(self, path: Path) -> Span:
        """The span of the key that introduces ``path`` (falls back to the value)."""
        self._indexed()
        found = self.key_spans.get(path)
        return self.at(found) if found is not None else self.span(path)

    def at(self, region: Region) -> Span:
        line, column = region >> 96, (region >> 64) & _MASK
        end_line, end_column = (region >> 32) & _MASK, region & _MASK
        return Span(self.path, line + 1, column + 1, end_line + 1, end_column + 1)

    def line(self, number: int) -> str:
        if self._lines is None:
            self._lines = self.text.splitlines()
        if 1 <= number <= len(self._lines):
            return self._lines[number - 1]
        return ""


class _NeedPositions(Exception):
    """Raised by a reader without positions when a diagnostic needs them (MESH003)."""


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


# Only a scalar that starts with one of these can be anything but a string; one that
# starts with a letter among them is a string unless it is a null or a boolean.
_NOT_ONLY_TEXT = frozenset("0123456789+-.~nNtTfF")
_WORDS = {
    word: value
    for words, value in ((_NULLS, None), (_TRUE, True), (_FALSE, False))
    for word in words
}
_intern = sys.intern


def _plain_scalar(value: str) -> Any:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if value and value[0] not in _NOT_ONLY_TEXT:
        return _intern(value)  # the common case: a name, often repeated (keys, types)
    if value in _WORDS:
        return _WORDS[value]
    if not value or value[0] not in "0123456789+-.":
        return _intern(value)  # a word that starts like `null`, `true` or `false`: `type`
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


def _region(event: Any) -> Region:
    return _pack(event.start_mark, event.end_mark)


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
    """Builds plain data from YAML events, recording spans and enforcing limits.

    With ``positions`` off it builds the same data without a span or a path.
    """

    def __init__(self, source: Source, limits: Limits, positions: bool = True) -> None:
        self.source = source
        self.limits = limits
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.total = 0
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0
        self.max_nodes = limits.max_nodes
        self.positions = positions
        self.spans, self.key_spans = source.spans, source.key_spans

    def run(self, loader: Any) -> None:
        """Read every event; ``get_event`` directly, which is faster than ``yaml.parse``."""
        get_event = loader.get_event
        while (event := get_event()) is not None:
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
        if self.total > self.max_nodes:
            raise _Refused(
                f"the file expands to more than {self.limits.max_nodes:,} YAML nodes "
                "(alias expansion or sheer size)",
                event.start_mark,
                "remove the nested aliases (`*name`) that multiply the document",
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
            self.spans[path] = _pack(event.start_mark, event.end_mark)
        self._attach(value, size, path)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, size)

    def _take_key(self, key: Any, event: Any) -> None:
        top = self.stack[-1]
        if type(key) is dict or type(key) is list:
            raise _Refused(
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
            region = _pack(event.start_mark, event.end_mark)
            if duplicate:
                self._duplicate(top.path, key, region, self.key_spans[path])
            self.key_spans[path] = region
        elif duplicate:
            raise _NeedPositions
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

    def _duplicate(self, path: Path, key: Any, region: Region, first: Region) -> None:
        from meshc import codes

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
        path = self._place()
        if path is None:
            raise _Refused(
                "a mapping key must be a plain value, not a collection",
                event.start_mark,
                "use a string key",
            )
        if self.positions:
            self.spans[path] = _region(event)
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
    """Read the data without positions, and index them only if someone asks.

    A file with a duplicate key (MESH003, reported with both positions) is read again
    with positions at once; any other problem carries its position in its mark.
    """
    enabled = gc.isenabled()
    gc.disable()  # the cyclic GC makes loading big files super-linear (FACTS.md)
    try:
        try:
            if _read_common(source, limits):
                if source.data is not None:
                    source._unindexed = limits
                return
            _read_pass(source, limits, positions=False)
        except _NeedPositions:
            _read_pass(source, limits, positions=True)
            return
        if source.data is not None:
            source._unindexed = limits
    finally:
        if enabled:
            gc.enable()


def _read_common(source: Source, limits: Limits) -> bool:
    """Read a file that uses only the common subset of YAML, fast; False otherwise.

    The subset is what mesh files are made of: one document of mappings, sequences
    and untagged scalars. Anchors, aliases, tags, merge keys, a crossed bound or a
    syntax error make it give up (False), and ``_Reader`` reads the file again and
    reports what it finds with its position. A duplicate key raises
    ``_NeedPositions``. The data is the same as ``_Reader`` builds; one flat loop
    without a call per event is what makes it about twice as fast.
    """
    loader = _Loader(source.text)
    get_event = loader.get_event
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    map_start, seq_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    map_end, seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    doc_start = yaml.DocumentStartEvent
    not_only_text, plain_scalar, intern = _NOT_ONLY_TEXT, _plain_scalar, _intern
    max_depth, max_nodes = limits.max_depth, limits.max_nodes
    no_key = _NO_KEY
    # The open collections, and for each open mapping the key waiting for its value.
    stack: list[Any] = []
    keys: list[Any] = []
    top: Any = None
    key: Any = no_key
    root: Any = None
    nodes = documents = 0
    try:
        while (event := get_event()) is not None:
            kind = type(event)
            if kind is scalar_event:
                if event.tag is not None or event.anchor is not None:
                    return False
                value: Any = event.value
                if event.implicit[0]:
                    if not value or value[0] in not_only_text:
                        value = plain_scalar(value)
                    else:
                        value = intern(value)
                nodes += 1  # scalars are what the bound counts, as in _Reader
                if nodes > max_nodes:
                    return False
            elif kind is map_start or kind is seq_start:
                if event.tag is not None or event.anchor is not None:
                    return False
                if len(stack) >= max_depth or (type(top) is dict and key is no_key):
                    return False  # too deep, or a collection as a key
                stack.append(top)
                keys.append(key)
                top, key = ({} if kind is map_start else []), no_key
                continue
            elif kind is map_end or kind is seq_end:
                value, top, key = top, stack.pop(), keys.pop()
            elif kind is doc_start:
                documents += 1
                if documents > 1:
                    return False
                continue
            elif kind is alias_event:
                return False
            else:
                continue  # stream and document ends
            if type(top) is list:
                top.append(value)
            elif type(top) is dict:
                if key is no_key:  # a scalar: a collection as a key gave up above
                    if value == "<<":
                        return False
                    key = value
                    continue
                if key in top:
                    raise _NeedPositions
                top[key] = value
                key = no_key
            else:
                root = value
    except yaml.YAMLError:
        return False  # _Reader reports it, with its position
    finally:
        loader.dispose()
    source.data = root
    return True


_NO_KEY = object()


def _index(source: Source, limits: Limits) -> None:
    """The positions of a file already read: a second pass over the same events."""
    shadow = Source(source.path, source.text)
    enabled = gc.isenabled()
    gc.disable()
    try:
        _read_pass(shadow, limits, positions=True)
    finally:
        if enabled:
            gc.enable()
    source.spans, source.key_spans = shadow.spans, shadow.key_spans


def _read_pass(source: Source, limits: Limits, positions: bool) -> None:
    from meshc import codes

    reader = _Reader(source, limits, positions)
    loader = None
    try:
        loader = _Loader(source.text)
        reader.run(loader)
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
    except yaml.reader.ReaderError as err:  # a character YAML refuses: no mark, an offset
        line, column = _line_column(source.text, err.position)
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


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


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
