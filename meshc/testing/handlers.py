"""Handlers for test meshes, importable by generated workers (no hypothesis, no Redis).

``conform`` is the specialists' handler in meshes drawn by
:func:`meshc.testing.meshes`: it turns its payload into a valid payload of its
agent's output type, copying the fields both types share and filling the others with
the plainest value of their type. It is a pure function of the payload, so a drawn
mesh passes every check of ``meshc test`` and a failure there is meshc's, not the
handler's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from meshc.runtime.context import Context
from meshc.testing.schema import Field, Schema, default_value, from_models
from pydantic import BaseModel, TypeAdapter, ValidationError


def conform(payload: BaseModel, ctx: Context) -> dict[str, Any]:
    """The payload reshaped to the type of the agent's (first) output stream."""
    model = _model_of(ctx, ctx.spec.writes[0])
    schema = _schema(model)
    given = payload.model_dump(mode="json")
    out: dict[str, Any] = {}
    for f in schema.types[model.__name__]:
        value = given.get(f.name, ...)
        out[f.name] = value if _fits(model, f, value) else default_value(schema, f.expr)
    return out


def _model_of(ctx: Context, stream: str) -> type[BaseModel]:
    # The runtime keeps the output models on the context (not yet public API).
    models: Mapping[str, type[BaseModel]] = ctx._models
    return models[stream]


@functools.cache
def _schema(model: type[BaseModel]) -> Schema:
    return from_models({"": model})


@functools.cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    annotation: Any = model.model_fields[name].annotation
    return TypeAdapter(annotation)


def _fits(model: type[BaseModel], f: Field, value: Any) -> bool:
    if value is ...:
        return False
    try:
        _adapter(model, f.name).validate_python(value)
    except ValidationError:
        return False
    return True
