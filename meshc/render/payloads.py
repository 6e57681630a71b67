"""JSON Schema of a mesh's message types, as the generated pydantic models accept them.

The AsyncAPI document describes payloads with these schemas; anything else that must
tell a client what a stream carries (an HTTP gateway, say) can use them too. Each
declared type becomes one schema whose nested types are ``$ref`` links into a shared
table, so a type is written once however many streams or fields use it. The rules
follow the models ``meshc compile`` writes: extra fields are refused, and a field is
optional exactly when its type is ``T | None`` (its default is None).
"""

from __future__ import annotations

from typing import Any

from meshc.core import CoreMesh
from meshc.typeexpr import TypeExpr, parse_type

Schema = dict[str, Any]
SCALARS: dict[str, Schema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "any": {},
}


def type_schemas(core: CoreMesh, ref_prefix: str) -> dict[str, Schema]:
    """Every declared type by name (sorted), nested types as ``{"$ref": prefix + name}``."""
    return {name: object_schema(name, core.types[name], ref_prefix) for name in sorted(core.types)}


def object_schema(name: str, fields: dict[str, str], ref_prefix: str) -> Schema:
    """One type: its fields in declared order (the order the models serialize them in)."""
    exprs = {field: parse_type(text) for field, text in fields.items()}
    schema: Schema = {"title": name, "type": "object"}
    required = [field for field, expr in exprs.items() if expr.kind != "optional"]
    if required:
        schema["required"] = required
    schema["properties"] = {field: expr_schema(expr, ref_prefix) for field, expr in exprs.items()}
    schema["additionalProperties"] = False
    return schema


def expr_schema(expr: TypeExpr, ref_prefix: str) -> Schema:
    """The schema of one type expression (``list[Finding] | None`` and so on)."""
    if expr.kind == "builtin":
        return dict(SCALARS[expr.name])
    if expr.kind == "ref":
        return {"$ref": ref_prefix + expr.name}
    if expr.kind == "list":
        return {"type": "array", "items": expr_schema(expr.args[0], ref_prefix)}
    if expr.kind == "dict":
        return {"type": "object", "additionalProperties": expr_schema(expr.args[0], ref_prefix)}
    return {"anyOf": [expr_schema(expr.args[0], ref_prefix), {"type": "null"}]}
