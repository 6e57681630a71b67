"""Hypothesis strategies derived from a mesh's message types.

``payloads(mesh, stream)`` draws valid payloads of a stream's type (plain JSON-ready
dicts, sizes bounded so handlers stay fast), ``near_valid(mesh, stream)`` draws
payloads one mutation away from valid (a required field missing, a field of the wrong
type, an unknown key) for negative tests, and ``joined(spec, agent)`` draws what an
aggregator's merge handler receives. ``meshes()`` (from :mod:`meshc.testing.meshgen`)
draws whole valid mesh files, for people who write tools on top of meshc.

``mesh`` may be a mesh file path, a :class:`~meshc.expand.CoreMesh` or a compiled
:class:`~meshc.runtime.spec.MeshSpec`; the three give the same strategies.

Text is drawn half from arbitrary Unicode and half from English-like prose (words,
punctuation, Markdown marks), because text handlers mostly act on words: random code
points alone would rarely reach their interesting branches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from meshc.extras import MissingExtra, message

try:
    from hypothesis import reject
    from hypothesis import strategies as st
except ImportError as err:
    raise MissingExtra(message("testing", "meshc.testing.strategies", ["hypothesis"])) from err

from meshc.core import CoreMesh
from meshc.runtime.context import Joined
from meshc.runtime.spec import MeshSpec
from meshc.testing.meshgen import meshes
from meshc.testing.schema import Field, Schema, from_core, from_models
from meshc.typeexpr import TypeExpr
from pydantic import ValidationError

__all__ = [
    "NearValid",
    "Sizes",
    "joined",
    "json_values",
    "meshes",
    "near_valid",
    "payloads",
    "schema_of",
    "values",
]

MeshLike = CoreMesh | MeshSpec | Schema | str | os.PathLike[str]

_WORDS = (
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "if",
    "then",
    "than",
    "this",
    "that",
    "these",
    "they",
    "we",
    "you",
    "it",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "has",
    "have",
    "had",
    "do",
    "does",
    "not",
    "no",
    "very",
    "really",
    "just",
    "quite",
    "data",
    "report",
    "mesh",
    "stream",
    "agent",
    "review",
    "their",
    "there",
    "its",
    "it's",
    "utilize",
    "in",
    "order",
    "to",
    "however",
    "because",
    "which",
    "who",
    "could",
    "should",
    "would",
    "of",
    "for",
    "with",
    "on",
    "at",
    "by",
    "from",
    "into",
    "about",
    "as",
    "new",
    "old",
    "good",
    "bad",
    "important",
    "results",
    "were",
    "analyzed",
    "teh",
    "recieve",
    "definately",
    "alot",
    ".",
    ",",
    "!",
    "?",
    ";",
    ":",
    "-",
    "\n",
    "\n\n",
    "# ",
    "- ",
    "`",
    "```",
    "(",
    ")",
)


@dataclass(frozen=True)
class Sizes:
    """Bounds on drawn values: characters per string, items per list or dict, and how
    deep nested or self-referencing types go before optional links become ``None``.

    Frozen, so one value can be the default of every strategy: ``Sizes(text=5)``
    changes one bound and keeps the others.
    """

    text: int = 40
    items: int = 4
    depth: int = 3


DEFAULT_SIZES = Sizes()


def schema_of(mesh: MeshLike) -> Schema:
    """The message types of a mesh given in any of its forms."""
    if isinstance(mesh, Schema):
        return mesh
    if isinstance(mesh, MeshSpec):
        return from_models({name: s.model for name, s in mesh.streams.items()})
    if isinstance(mesh, CoreMesh):
        return from_core(mesh)
    from meshc.api import load_mesh

    return from_core(load_mesh(os.fspath(mesh)))


def text(sizes: Sizes = DEFAULT_SIZES) -> st.SearchStrategy[str]:
    """Arbitrary Unicode or English-like prose, at most ``sizes.text`` characters."""
    plain = st.text(st.characters(codec="utf-8"), max_size=sizes.text)
    prose = st.lists(st.sampled_from(_WORDS), max_size=max(1, sizes.text // 4)).map(
        lambda words: " ".join(words)[: sizes.text]
    )
    return st.one_of(plain, prose)


def json_values(sizes: Sizes = DEFAULT_SIZES) -> st.SearchStrategy[Any]:
    """Any JSON value (the ``any`` field type)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=sizes.text),
    )
    keys = st.text(max_size=10)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=sizes.items),
            st.dictionaries(keys, inner, max_size=sizes.items),
        ),
        max_leaves=2 * sizes.items,
    )


class _Builder:
    """Strategies for the types of one schema, memoised per (expression, depth)."""

    def __init__(self, schema: Schema, sizes: Sizes) -> None:
        self.schema = schema
        self.sizes = sizes
        self.memo: dict[tuple[TypeExpr, int], st.SearchStrategy[Any]] = {}

    def of(self, expr: TypeExpr, depth: int = 0) -> st.SearchStrategy[Any]:
        key = (expr, depth)
        if key not in self.memo:
            self.memo[key] = self._build(expr, depth)
        return self.memo[key]

    def _build(self, expr: TypeExpr, depth: int) -> st.SearchStrategy[Any]:
        deep = depth >= self.sizes.depth
        if expr.kind == "builtin":
            return self._builtin(expr.name)
        if expr.kind == "optional":
            return st.none() if deep else st.none() | self.of(expr.args[0], depth + 1)
        if expr.kind == "list":
            if deep:  # without building the item strategy: a type may contain itself
                return st.just([])
            return st.lists(self.of(expr.args[0], depth + 1), max_size=self.sizes.items)
        if expr.kind == "dict":
            if deep:
                return st.just({})
            keys = st.text(max_size=10)
            items = self.of(expr.args[0], depth + 1)
            return st.dictionaries(keys, items, max_size=self.sizes.items)
        return self.record(self.schema.types[expr.name], depth)

    def record(self, fields: tuple[Field, ...], depth: int = 0) -> st.SearchStrategy[Any]:
        """A type's fields as a dict; fields that may be left out sometimes are."""
        required = {f.name: self.of(f.expr, depth + 1) for f in fields if f.required}
        optional = {f.name: self.of(f.expr, depth + 1) for f in fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional)

    def _builtin(self, name: str) -> st.SearchStrategy[Any]:
        if name == "str":
            return text(self.sizes)
        if name == "int":
            return st.integers(-(2**53), 2**53)
        if name == "float":
            return st.floats(allow_nan=False, allow_infinity=False)
        if name == "bool":
            return st.booleans()
        return json_values(self.sizes)


def values(mesh: MeshLike, type_name: str, sizes: Sizes = DEFAULT_SIZES) -> st.SearchStrategy[Any]:
    """Valid values of a type expression of the mesh (``"list[Finding]"``, ``"int"``…)."""
    from meshc.typeexpr import parse_type

    return _Builder(schema_of(mesh), sizes).of(parse_type(type_name))


def payloads(
    mesh: MeshLike, stream: str, sizes: Sizes = DEFAULT_SIZES
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid payloads of ``stream``'s type, as JSON-ready dicts."""
    schema = schema_of(mesh)
    return _Builder(schema, sizes).record(schema.fields(stream))


@dataclass(frozen=True)
class NearValid:
    """A payload one mutation away from valid: ``mutation`` is ``missing``,
    ``wrong_type`` or ``extra``, ``field`` the field it touched."""

    payload: dict[str, Any]
    mutation: str
    field: str

    def __str__(self) -> str:
        return f"{self.mutation} `{self.field}`"


_WRONG = {
    "str": 12345,
    "int": "not a number",
    "float": "not a number",
    "bool": "not a bool",
}


def wrong_value(expr: TypeExpr) -> Any:
    """A JSON value that a field of this type rejects, or ``...`` when none exists
    (``any`` takes everything)."""
    if expr.kind == "builtin":
        return _WRONG.get(expr.name, ...)
    if expr.kind == "optional":
        return wrong_value(expr.args[0])
    return "not a list" if expr.kind == "list" else "not an object"


def mutations(fields: tuple[Field, ...], payload: dict[str, Any]) -> list[NearValid]:
    """Every single-step mutation of a valid payload that makes it invalid."""
    out: list[NearValid] = []
    for f in fields:
        if f.required:
            rest = {k: v for k, v in payload.items() if k != f.name}
            out.append(NearValid(rest, "missing", f.name))
        bad = wrong_value(f.expr)
        if bad is not ...:
            out.append(NearValid({**payload, f.name: bad}, "wrong_type", f.name))
    extra = "unexpected"
    while extra in payload:
        extra += "_"
    out.append(NearValid({**payload, extra: "?"}, "extra", extra))
    return out


def near_valid(
    mesh: MeshLike, stream: str, sizes: Sizes = DEFAULT_SIZES
) -> st.SearchStrategy[NearValid]:
    """Payloads that a stream's model must reject, each with the mutation that broke it."""
    schema = schema_of(mesh)
    fields = schema.fields(stream)
    return payloads(schema, stream, sizes).flatmap(lambda p: st.sampled_from(mutations(fields, p)))


def joined(
    spec: MeshSpec, agent: str, *, allow_missing: bool = True, sizes: Sizes = DEFAULT_SIZES
) -> st.SearchStrategy[Joined]:
    """What an aggregator's merge handler receives: one partial per lane sharing the
    join key; with ``allow_missing``, some lanes may be absent (a timed-out join)."""
    a = spec.agents[agent]
    if a.join is None:
        raise ValueError(f"agent {agent!r} of mesh {spec.name!r} has no join")
    lanes = [(stream, a.join.lanes[stream]) for stream in a.reads]
    on = a.join.on
    parts = [payloads(spec, stream, sizes) for stream, _ in lanes]
    names = [lane for _, lane in lanes]
    absent = st.sets(st.sampled_from(names), max_size=len(names) - 1) if allow_missing else None

    @st.composite
    def draw_joined(draw: st.DrawFn) -> Joined:
        missing = draw(absent) if absent is not None else set()
        drawn = [(s, lane, draw(p)) for (s, lane), p in zip(lanes, parts, strict=True)]
        present = [(s, lane, d) for s, lane, d in drawn if lane not in missing]
        shared = {k: present[0][2][k] for k in on if k in present[0][2]}
        try:
            models = {
                lane: spec.streams[s].model.model_validate({**d, **shared})
                for s, lane, d in present
            }
        except ValidationError:
            reject()  # the lanes disagree on a join key's type
        first = next(iter(models.values())).model_dump(mode="json", include=set(on))
        key = {k: first[k] for k in on if k in first}
        return Joined(key, models, tuple(n for n in names if n in missing))

    return draw_joined()
