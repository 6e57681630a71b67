"""The message types of a mesh as type expressions, whatever form the mesh came in.

Strategies and the ``conform`` test handler need one thing from a mesh: for each
stream, the fields of its type as :class:`~meshc.typeexpr.TypeExpr`. A mesh file's
core form has them as text; a compiled :class:`~meshc.runtime.spec.MeshSpec` only has
pydantic models, whose annotations are read back into the same expressions. So a
test written against a generated package and one written against the YAML see the
same types.

This module imports neither hypothesis nor a Redis client: generated workers may
import :mod:`meshc.testing.handlers`, which builds on it.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from meshc.typeexpr import TypeExpr, parse_type
from pydantic import BaseModel


@dataclass(frozen=True)
class Field:
    """One field of a message type: its expression and whether a payload must carry it."""

    name: str
    expr: TypeExpr
    required: bool


@dataclass(frozen=True)
class Schema:
    """Every message type of a mesh and the type of every stream."""

    types: dict[str, tuple[Field, ...]]
    streams: dict[str, str]

    def fields(self, stream: str) -> tuple[Field, ...]:
        """The fields of a stream's type; KeyError names the streams there are."""
        if stream not in self.streams:
            known = ", ".join(sorted(self.streams)) or "none"
            raise KeyError(f"no stream {stream!r} in this mesh (streams: {known})")
        return self.types[self.streams[stream]]


def from_core(core: Any) -> Schema:
    """From a :class:`~meshc.expand.CoreMesh` (the validated YAML)."""
    table = {
        name: tuple(
            Field(f, expr, expr.kind != "optional")
            for f, expr in ((f, parse_type(text)) for f, text in fields.items())
        )
        for name, fields in core.types.items()
    }
    return Schema(table, {name: s.type for name, s in core.streams.items()})


def from_models(streams: dict[str, type[BaseModel]]) -> Schema:
    """From pydantic models (a compiled mesh), following nested models."""
    table: dict[str, tuple[Field, ...]] = {}
    pending = list(streams.values())
    while pending:
        model = pending.pop()
        if model.__name__ in table:
            continue
        found: list[type[BaseModel]] = []
        table[model.__name__] = tuple(
            Field(name, annotation_expr(info.annotation, found), info.is_required())
            for name, info in model.model_fields.items()
        )
        pending.extend(found)
    return Schema(table, {s: m.__name__ for s, m in streams.items()})


def annotation_expr(annotation: Any, found: list[type[BaseModel]] | None = None) -> TypeExpr:
    """A field annotation of a generated model as a type expression.

    Nested models met on the way are appended to ``found``. Anything outside the mesh
    type language (which generated models never contain) reads as ``any``.
    """
    if annotation in (str, int, float, bool):
        return TypeExpr("builtin", annotation.__name__)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if found is not None:
            found.append(annotation)
        return TypeExpr("ref", annotation.__name__)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        return TypeExpr("optional", args=(annotation_expr(inner, found),))
    if origin is list:
        return TypeExpr("list", args=(annotation_expr(args[0] if args else Any, found),))
    if origin is dict:
        return TypeExpr("dict", args=(annotation_expr(args[1] if args else Any, found),))
    return TypeExpr("builtin", "any")


def default_value(schema: Schema, expr: TypeExpr) -> Any:
    """The plainest value of a type: ``""``, ``0``, ``[]``, ``None`` … (JSON-ready)."""
    if expr.kind == "builtin":
        return {"str": "", "int": 0, "float": 0.0, "bool": False}.get(expr.name)
    if expr.kind == "list":
        return []
    if expr.kind == "dict":
        return {}
    if expr.kind == "optional":
        return None
    return {f.name: default_value(schema, f.expr) for f in schema.types[expr.name] if f.required}
