"""Type expressions of message fields: ``str``, ``list[T]``, ``dict[str, T]``, ``T | None``.

A tiny recursive-descent parser whose output both the type checks and the code
generator use, so the two never disagree about what a field's type means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BUILTINS = {"str": "str", "int": "int", "float": "float", "bool": "bool", "any": "Any"}
# The names that the generated models module binds (its imports) or that its field
# annotations use, and what each is there. A message type or a field of that name would
# replace it: the next class would derive from a user's model, `list[...]` would stop
# being a list. codegen/templates/models.py.j2 must bind nothing else (a test checks).
MODEL_NAMES = {
    "annotations": "`annotations` (imported from `__future__`)",
    "Any": "`Any` (imported from `typing`)",
    "BaseModel": "`BaseModel` (imported from `pydantic`)",
    "ConfigDict": "`ConfigDict` (imported from `pydantic`)",
    **{name: f"the built-in `{name}`" for name in ("bool", "dict", "float", "int", "list", "str")},
}
MAX_DEPTH = 32  # list[list[...]] deeper than this is refused, never recursed into
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\[|\]|,|\|))")


@dataclass(frozen=True)
class TypeExpr:
    """``kind`` is builtin, ref, list, dict or optional; ``args`` holds the inner types."""

    kind: str
    name: str = ""
    args: tuple[TypeExpr, ...] = ()

    def refs(self) -> set[str]:
        if self.kind == "ref":
            return {self.name}
        out: set[str] = set()
        for a in self.args:
            out |= a.refs()
        return out

    def python(self) -> str:
        if self.kind == "builtin":
            return BUILTINS[self.name]
        if self.kind == "ref":
            return self.name
        if self.kind == "list":
            return f"list[{self.args[0].python()}]"
        if self.kind == "dict":
            return f"dict[str, {self.args[0].python()}]"
        return f"{self.args[0].python()} | None"


class TypeSyntaxError(ValueError):
    pass


def parse_type(text: str) -> TypeExpr:
    if text.count("[") > MAX_DEPTH:
        raise TypeSyntaxError(f"type expression nested deeper than {MAX_DEPTH} levels")
    tokens = _tokens(text)
    expr, rest = _union(tokens)
    if rest:
        raise TypeSyntaxError(f"unexpected `{rest[0]}` in `{text}`")
    return expr


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise TypeSyntaxError(f"unexpected character `{text[pos:].strip()[:1]}` in `{text}`")
        out.append(match.group(1) or match.group(2))
        pos = match.end()
    if not out:
        raise TypeSyntaxError("empty type expression")
    return out


def _union(tokens: list[str]) -> tuple[TypeExpr, list[str]]:
    expr, rest = _atom(tokens)
    if rest and rest[0] == "|":
        if len(rest) < 2 or rest[1] != "None":
            raise TypeSyntaxError("only `T | None` unions are supported")
        return TypeExpr("optional", args=(expr,)), rest[2:]
    return expr, rest


def _atom(tokens: list[str]) -> tuple[TypeExpr, list[str]]:
    if not tokens:
        raise TypeSyntaxError("a type is missing")
    head, rest = tokens[0], tokens[1:]
    if head in ("list", "dict") and rest and rest[0] == "[":
        return _generic(head, rest[1:])
    if not re.match(r"^[A-Za-z_]", head) or head == "None":
        raise TypeSyntaxError(f"expected a type name, found `{head}`")
    if head in BUILTINS:
        return TypeExpr("builtin", head), rest
    return TypeExpr("ref", head), rest


def _generic(head: str, tokens: list[str]) -> tuple[TypeExpr, list[str]]:
    if head == "dict":
        if tokens[:2] != ["str", ","]:
            raise TypeSyntaxError("dict keys are strings: write `dict[str, T]`")
        tokens = tokens[2:]
    inner, rest = _union(tokens)
    if not rest or rest[0] != "]":
        raise TypeSyntaxError(f"`{head}[` is not closed with `]`")
    return TypeExpr(head, args=(inner,)), rest[1:]
