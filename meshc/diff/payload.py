"""Message-type compatibility: what changes between two versions of a stream's type.

Generated message models refuse unknown fields (``extra="forbid"``), give a
``T | None`` field the default None (every other field is required), and validate
JSON leniently the way pydantic does: an ``int`` field takes ``1.0`` but not ``1.5``,
a ``float`` field takes any number, a ``str`` field only strings. A writer dumps every
field of its model, a None one as ``null``. The wire carries no type names.

From these, each structural change has two verdicts: can a *new* reader read the
entries an old writer left in the stream (``backward``), and can an *old* reader,
still running, read what a new writer writes (``forward``). :data:`RULES` holds them;
docs/compatibility.md explains each with an example, and a test checks each against
the real generated models.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from meshc.typeexpr import TypeExpr, parse_type

Types = dict[str, dict[str, str]]
Origin = tuple[str, str]  # ("type", name) or ("stream", name): where a change was made


@dataclass(frozen=True)
class Rule:
    """One kind of change, its two verdicts, and why a direction fails."""

    id: str
    backward: bool  # new readers read the entries written before the change
    forward: bool  # old readers read the entries written after it
    title: str
    why_backward: str = ""
    why_forward: str = ""


_EXTRA = "models refuse a field they do not declare"
RULES = {
    r.id: r
    for r in (
        Rule(
            "field-added-optional",
            True,
            False,
            "optional field added",
            why_forward=f"new entries carry the field ({_EXTRA})",
        ),
        Rule(
            "field-added-required",
            False,
            False,
            "required field added",
            "entries written before lack the field",
            f"new entries carry the field ({_EXTRA})",
        ),
        Rule(
            "field-removed-optional",
            False,
            True,
            "optional field removed",
            f"entries written before carry the field, null at least ({_EXTRA})",
        ),
        Rule(
            "field-removed-required",
            False,
            False,
            "required field removed",
            f"entries written before carry the field ({_EXTRA})",
            "new entries lack a field the old type requires",
        ),
        Rule(
            "field-renamed",
            False,
            False,
            "field renamed",
            f"entries written before carry the old name ({_EXTRA}) and lack the new one",
            f"new entries carry the new name ({_EXTRA}) and lack the old one",
        ),
        Rule(
            "made-optional",
            True,
            False,
            "field made optional (`T` to `T | None`)",
            why_forward="new entries may hold null, which the old type refuses",
        ),
        Rule(
            "made-required",
            False,
            True,
            "field made required (`T | None` to `T`)",
            "entries written before may hold null",
        ),
        Rule(
            "widened",
            True,
            False,
            "type widened (bool to int, int to float)",
            why_forward="new values may not fit the old type (1.5 in an int field)",
        ),
        Rule(
            "narrowed",
            False,
            True,
            "type narrowed (float to int, int to bool)",
            "values written before may not fit (1.5 in an int field)",
        ),
        Rule(
            "to-any",
            True,
            False,
            "type changed to `any`",
            why_forward="new entries may hold any value",
        ),
        Rule(
            "from-any",
            False,
            True,
            "type changed from `any`",
            "entries written before may hold any value",
        ),
        Rule(
            "scalar-changed",
            False,
            False,
            "scalar type changed (e.g. str to int)",
            "a value of the old type does not fit the new one",
            "a value of the new type does not fit the old one",
        ),
        Rule(
            "kind-changed",
            False,
            False,
            "shape changed (list, dict, object, scalar)",
            "a value of the old shape does not fit the new one",
            "a value of the new shape does not fit the old one",
        ),
        Rule("type-renamed", True, True, "type renamed, same shape"),
    )
}
_WIDER = {("int", "float"), ("bool", "int"), ("bool", "float")}


@dataclass(frozen=True)
class Change:
    """One structural change at ``path`` (a field path: ``findings[].severity``, ``{}``
    for a dict's values) inside ``origin``."""

    rule: str
    origin: Origin
    path: str
    old: str = ""
    new: str = ""

    def describe(self) -> str:
        where = f"field `{self.path}`" if self.path else "the payload"
        if self.rule == "type-renamed":
            return f"{where}: type `{self.old}` renamed to `{self.new}` (same shape)"
        if self.rule == "field-renamed":
            return f"field `{self.old}` renamed to `{self.new}`"
        if self.rule.startswith("field-added") or self.rule.startswith("field-removed"):
            verb, expr = ("added", self.new) if "added" in self.rule else ("removed", self.old)
            kind = self.rule.rsplit("-", 1)[1]
            return f"field `{self.path}: {expr}` {verb} ({kind})"
        return f"{where}: `{self.old}` → `{self.new}`"


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> TypeExpr:
    return parse_type(text)


def _text(expr: TypeExpr) -> str:
    if expr.kind == "builtin":
        return expr.name
    if expr.kind == "ref":
        return expr.name
    if expr.kind == "list":
        return f"list[{_text(expr.args[0])}]"
    if expr.kind == "dict":
        return f"dict[str, {_text(expr.args[0])}]"
    return f"{_text(expr.args[0])} | None"


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


class Walk:
    """Compares the old and new types of one stream (or one type), collecting changes.

    A change made inside a type that keeps its name is attributed to that type, with
    a path from it, so the same change reached through several streams or fields is
    one change; elsewhere it belongs to the origin the walk started from.
    """

    def __init__(self, old: Types, new: Types) -> None:
        self.old, self.new = old, new
        self.changes: list[Change] = []
        self._seen: set[tuple[str, str, Origin, str]] = set()

    def model(self, old_name: str, new_name: str, origin: Origin, path: str = "") -> None:
        """Compare two object types; a renamed type with the same shape is one change."""
        if old_name == new_name:
            self._fields(old_name, new_name, ("type", old_name), "")
            return
        before = len(self.changes)
        self._fields(old_name, new_name, origin, path)
        if not any(c.origin == origin for c in self.changes[before:]):
            self._add("type-renamed", origin, path, old_name, new_name)

    def _fields(self, old_name: str, new_name: str, origin: Origin, path: str) -> None:
        key = (old_name, new_name, origin, path)
        if key in self._seen:
            return
        self._seen.add(key)
        of, nf = self.old[old_name], self.new[new_name]
        added = [f for f in nf if f not in of]
        removed = [f for f in of if f not in nf]
        if len(added) == len(removed) == 1 and _parse(of[removed[0]]) == _parse(nf[added[0]]):
            self._add("field-renamed", origin, path, removed[0], added[0])
        else:
            for f in added:
                rule = "optional" if _parse(nf[f]).kind == "optional" else "required"
                self._add(f"field-added-{rule}", origin, _join(path, f), "", nf[f])
            for f in removed:
                rule = "optional" if _parse(of[f]).kind == "optional" else "required"
                self._add(f"field-removed-{rule}", origin, _join(path, f), of[f], "")
        for f in of:
            if f in nf:
                self.expr(_parse(of[f]), _parse(nf[f]), origin, _join(path, f))

    def expr(self, o: TypeExpr, n: TypeExpr, origin: Origin, path: str) -> None:
        if o.kind == "optional" or n.kind == "optional":
            self._optional(o, n, origin, path)
        elif o.kind == n.kind == "ref":
            self.model(o.name, n.name, origin, path)
        elif o.kind == n.kind and o.kind in ("list", "dict"):
            inner = path + ("[]" if o.kind == "list" else "{}")
            self.expr(o.args[0], n.args[0], origin, inner)
        elif o != n:
            self._add(_scalar_rule(o, n), origin, path, _text(o), _text(n))

    def _optional(self, o: TypeExpr, n: TypeExpr, origin: Origin, path: str) -> None:
        if o.kind == n.kind:
            self.expr(o.args[0], n.args[0], origin, path)
        elif o.kind == "optional":
            self._add("made-required", origin, path, _text(o), _text(n))
            self.expr(o.args[0], n, origin, path)
        else:
            self._add("made-optional", origin, path, _text(o), _text(n))
            self.expr(o, n.args[0], origin, path)

    def _add(self, rule: str, origin: Origin, path: str, old: str, new: str) -> None:
        change = Change(rule, origin, path, old, new)
        if change not in self.changes:
            self.changes.append(change)


def _scalar_rule(o: TypeExpr, n: TypeExpr) -> str:
    """The rule of a change between two different non-optional, non-object types."""
    if n == TypeExpr("builtin", "any"):
        return "to-any"
    if o == TypeExpr("builtin", "any"):
        return "from-any"
    if o.kind == n.kind == "builtin":
        if (o.name, n.name) in _WIDER:
            return "widened"
        return "narrowed" if (n.name, o.name) in _WIDER else "scalar-changed"
    return "kind-changed"


def verdicts(changes: list[Change]) -> tuple[bool, bool]:
    """(backward, forward) for a set of changes: each direction holds if every change allows it."""
    rules = [RULES[c.rule] for c in changes]
    return all(r.backward for r in rules), all(r.forward for r in rules)
