"""Fingerprints of message types and of a whole mesh, compiled into ``topology.py``.

A stream's *form* is the canonical JSON of its type with every nested type written
out in place: objects as their fields sorted by name, ``list``/``dict``/``optional``
as a two-item array, scalars by name. Type names are left out, because the wire
carries none (renaming a type changes nothing a reader sees), and so is field order.
The fingerprint is the first 16 hex digits of the form's SHA-256: two builds agree on
it exactly when their entries on that stream look alike. The runtime compares forms
field by field when fingerprints differ (``meshc.runtime.compat``), following
docs/compatibility.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from meshc.core import CoreMesh
from meshc.typeexpr import TypeExpr, parse_type


def type_form(core: CoreMesh, name: str, within: tuple[str, ...] = ()) -> Any:
    """The canonical tree of the declared type ``name`` (an object). A type that refers
    to itself (``next: Node | None``), directly or through others, is written
    ``["rec", n]`` where it recurs: the object ``n`` levels up, a name-free back-reference."""
    fields, inner = core.types[name], (*within, name)
    return {"fields": [[f, _expr_form(core, parse_type(fields[f]), inner)] for f in sorted(fields)]}


def _expr_form(core: CoreMesh, expr: TypeExpr, within: tuple[str, ...]) -> Any:
    if expr.kind == "builtin":
        return expr.name
    if expr.kind == "ref":
        if expr.name in within:
            return ["rec", len(within) - within.index(expr.name) - 1]
        return type_form(core, expr.name, within)
    return [expr.kind, _expr_form(core, expr.args[0], within)]


def canonical(form: Any) -> str:
    """One spelling of a form: compact JSON (keys are already in order)."""
    return orjson.dumps(form).decode()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def stream_forms(core: CoreMesh) -> dict[str, str]:
    """Every stream's canonical form, by stream name."""
    return {name: canonical(type_form(core, s.type)) for name, s in core.streams.items()}


def mesh_fingerprint(core: CoreMesh, agent_literals: list[tuple[str, ...]]) -> str:
    """The whole mesh: its name, partitioning, every stream's form and settings, and
    every agent as its generated ``AgentSpec`` literals (policy, handler, join...)."""
    forms = stream_forms(core)
    streams = [
        [n, forms[n], repr(s.retention), s.terminal, s.max_backlog]
        for n, s in sorted(core.streams.items())
    ]
    whole = [core.name, core.partitions, core.partition_key, streams, sorted(agent_literals)]
    return digest(canonical(whole))
