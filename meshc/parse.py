"""Loaded data → the typed ``Mesh``, with schema problems as positioned diagnostics.

One bad agent must not hide the graph problems of the others, so when validation
fails the entries with errors are dropped and the rest is validated again; the
names of dropped entries are remembered so that references to them are not
reported a second time as undeclared. So are the names a broken entry mentions
(the streams a dropped agent reads or writes, a dropped stream's type) and agents
that lost an unknown key: the checks spare them the errors that would only follow
from the first one (a stream "written by no agent" because its writer was dropped).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any

from meshc import codes
from meshc.diagnostics import Diagnostic
from meshc.model import Mesh
from meshc.source import Path, Source
from pydantic import ValidationError

_SECTIONS = ("agents", "streams", "types", "lanes")
# The errors of the slotted records (pydantic dataclasses) under the names models
# give them, so the rest of this module knows one set.
_AS_MODEL = {"unexpected_keyword_argument": "extra_forbidden", "dataclass_type": "model_type"}


@dataclass
class Parsed:
    mesh: Mesh | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    dropped: dict[str, set[str]] = field(default_factory=dict)
    spared: set[str] = field(default_factory=set)


def parse(source: Source) -> Parsed:
    data = source.data
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        diag = codes.SCHEMA.at(
            source.span(()),
            f"a mesh file is a mapping with `mesh`, `streams` and `agents`; found {found}",
            help_text="start from `meshc schema` or an example in meshes/",
        )
        return Parsed(None, [diag])
    try:
        return Parsed(Mesh.model_validate(data))
    except ValidationError as error:
        failure = error
    errors = _errors(failure)
    diags = [
        replace(_diagnostic(source, e, i < SUGGEST_LIMIT), breaks=_broken(data, e))
        for i, e in enumerate(errors)
    ]
    dropped, retry = _drop_broken(data, errors)
    spared = _spared(data, errors, dropped)
    if retry is None:
        return Parsed(None, diags, dropped, spared)
    try:
        return Parsed(Mesh.model_validate(retry), diags, dropped, spared)
    except ValidationError:
        return Parsed(None, diags, dropped, spared)


def _errors(failure: ValidationError) -> list[Any]:
    errors: list[Any] = failure.errors()
    for e in errors:
        e["type"] = _AS_MODEL.get(e["type"], e["type"])
    return errors


def _spared(data: dict[str, Any], errors: list[Any], dropped: dict[str, set[str]]) -> set[str]:
    """Names whose follow-on diagnostics a broken entry would only cause."""
    out: set[str] = set()
    for section, names in dropped.items():
        for name in names:
            out |= _mentions(data[section].get(name), _MENTIONS[section])
    for e in errors:
        loc = e["loc"]
        if e["type"] == "extra_forbidden" and len(loc) == 3 and loc[0] == "agents":
            out.add(str(loc[1]))
            out |= _mentions(data["agents"].get(loc[1]), (str(loc[2]),))
    return out


def _broken(data: dict[str, Any], error: Any) -> frozenset[str]:
    """What one schema error leaves broken: its entry, the names the entry mentions
    and, for an unknown key, the names under that key (`reeds: [tasks]`)."""
    loc = error["loc"]
    if len(loc) < 2 or loc[0] not in _SECTIONS or not isinstance(data.get(loc[0]), dict):
        return frozenset()
    keys = _MENTIONS[loc[0]] + ((str(loc[2]),) if len(loc) > 2 else ())
    return frozenset({str(loc[1]), *_mentions(data[loc[0]].get(loc[1]), keys)})


_MENTIONS = {
    "agents": ("reads", "writes"),
    "streams": ("type",),
    "types": (),
    "lanes": ("input", "output", "type"),
}


def _mentions(entry: Any, keys: tuple[str, ...]) -> set[str]:
    """Strings under ``keys`` of an entry, however malformed the entry is."""
    if not isinstance(entry, dict):
        return set()
    out: set[str] = set()
    for key in keys:
        value = entry.get(key)
        if isinstance(value, dict):
            out |= _mentions(value, keys)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                out.add(item)
    return out


def _drop_broken(
    data: dict[str, Any], errors: list[Any]
) -> tuple[dict[str, set[str]], dict[str, Any] | None]:
    """Remove what failed: entries of the keyed sections, or a head field (its default).

    An unknown key inside an entry only drops that key, so the entry still takes part
    in the graph checks.
    """
    dropped: dict[str, set[str]] = {}
    extra: dict[tuple[str, str], set[str]] = {}
    retry = dict(data)
    for e in errors:
        loc = e["loc"]
        if not loc:
            return dropped, None
        head = str(loc[0])
        if _is_extra_key(data, loc, e["type"]):
            extra.setdefault((head, str(loc[1])), set()).add(str(loc[2]))
        elif len(loc) >= 2 and head in _SECTIONS and isinstance(data.get(head), dict):
            dropped.setdefault(head, set()).add(str(loc[1]))
        elif head == "mesh":
            retry["mesh"] = "invalid_mesh"
        else:
            retry.pop(head, None)
    for (section, name), unknown in extra.items():
        entry = data[section][name]
        retry[section] = dict(retry[section])
        retry[section][name] = {k: v for k, v in entry.items() if k not in unknown}
    for section, names in dropped.items():
        retry[section] = {k: v for k, v in retry[section].items() if k not in names}
    return dropped, retry


def _is_extra_key(data: dict[str, Any], loc: tuple[Any, ...], kind: str) -> bool:
    if kind != "extra_forbidden" or len(loc) != 3 or loc[0] not in _SECTIONS:
        return False
    section = data.get(loc[0])
    return isinstance(section, dict) and isinstance(section.get(loc[1]), dict)


# "Did you mean" costs a fuzzy match per unknown key; past this many errors a file is
# not a typo, so the rest get the list of allowed keys instead.
SUGGEST_LIMIT = 200


def _diagnostic(source: Source, error: Any, suggest: bool = True) -> Diagnostic:
    loc: Path = tuple(error["loc"])
    kind = error["type"]
    where = _where(loc)
    if kind == "extra_forbidden":
        return _unknown_key(source, loc, where, suggest)
    if kind == "missing":
        parent = loc[:-1]
        span = source.key_span(parent) if parent else source.span(())
        return codes.SCHEMA.at(
            span,
            f"{_where(parent) or 'the mesh'} is missing the required field `{loc[-1]}`",
            help_text=f"add `{loc[-1]}:` {_hint(loc)}",
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "handler":
        message = "a handler is `package.module:function` or a built-in (fanout, merge, llm)"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return codes.SCHEMA.at(
        source.span(loc),
        f"{where}: {message} (got {shown})",
        help_text=_fix_for(kind, loc),
    )


def _unknown_key(source: Source, loc: Path, where: str, suggest: bool = True) -> Diagnostic:
    allowed = _allowed_keys(loc[:-1])
    key = str(loc[-1])
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if suggest else []
    if close:
        fix = f"did you mean `{close[0]}`?"
    elif allowed:
        fix = "allowed keys here: " + ", ".join(f"`{a}`" for a in allowed)
    else:
        fix = "remove this key"
    return codes.SCHEMA.at(
        source.key_span(loc),
        f"unknown key `{key}` in {_where(loc[:-1]) or 'the mesh'}",
        help_text=fix,
    )


def _where(loc: Path) -> str:
    if not loc:
        return ""
    if len(loc) >= 2 and loc[0] in ("agents", "streams", "types", "lanes"):
        noun = {"agents": "agent", "streams": "stream", "types": "type", "lanes": "lane family"}
        head = f"{noun[str(loc[0])]} `{loc[1]}`"
        rest = ".".join(str(p) for p in loc[2:])
        return f"{head} field `{rest}`" if rest else head
    return "`" + ".".join(str(p) for p in loc) + "`"


def _hint(loc: Path) -> str:
    hints = {
        "mesh": "an identifier such as `doc_review`",
        "role": "one of producer, coordinator, specialist, aggregator, sink",
        "type": "the name of a type declared under `types`",
        "on": "the list of key fields shared by every partial",
        "name": "the model name",
        "stream": "a stream name template such as `doc.review.{lane}`",
        "input": "`{stream: ..., type: ...}`",
        "output": "`{stream: ..., type: ...}`",
    }
    return hints.get(str(loc[-1]), "with a value")


def _fix_for(kind: str, loc: Path) -> str:
    last = str(loc[-1]) if loc else ""
    if kind.startswith("string_pattern") and last == "handler":
        return "write `package.module:function`, or a built-in: fanout, merge, llm"
    if kind == "enum":
        return "use one of the values listed in the message"
    if kind in ("int_parsing", "int_type", "greater_than_equal", "int_from_float"):
        return f"`{last}` takes a whole number of at least its minimum"
    if kind in ("list_type",):
        return f"write `{last}` as a list, e.g. `[a, b]`"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"write `{last}` as a mapping of keys to values"
    if kind in ("string_type",):
        return f"write `{last}` as a string (quote it)"
    if kind in ("bool_type", "bool_parsing"):
        return f"`{last}` is `true` or `false`"
    return "see `meshc schema` for the expected form"


def _allowed_keys(loc: Path) -> list[str]:
    """The fields of the model that sits at ``loc`` (for "did you mean")."""
    current: Any = Mesh
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    fields = _fields(_unwrap(current))
    return list(fields) if fields is not None else []


def _fields(target: Any) -> dict[str, Any] | None:
    """The fields of a model or a pydantic dataclass; None for any other type."""
    fields = getattr(target, "__pydantic_fields__", None) if isinstance(target, type) else None
    return fields if isinstance(fields, dict) else None


def _step(annotation: Any, part: str | int) -> Any:
    target = _unwrap(annotation)
    fields = _fields(target)
    if fields is not None:
        field_info = fields.get(str(part))
        return field_info.annotation if field_info else None
    origin = typing.get_origin(target)
    args = typing.get_args(target)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is list and args:
        return args[0]
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional around a type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
