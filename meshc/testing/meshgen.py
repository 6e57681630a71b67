"""``meshes()``: a strategy for whole valid mesh files, for people who build on meshc.

A drawn mesh has one or more *flows*. A flow is a producer writing an intake stream
and one or two *chains* reading it; a chain is a row of stages ending in a terminal
stream, each stage either a *step* (one specialist) or a *fan* (a coordinator with the
built-in ``fanout``, two to four lane specialists, an aggregator with the built-in
``merge`` joining them). Types stay consistent by construction: every type of a flow
carries the flow's join keys, lane inputs have the coordinator's input type, merged
types have the ``parts``/``missing`` fields that ``merge`` writes. Lanes are written
either out in full or with the ``lanes:`` shorthand.

Specialists use ``meshc.testing.handlers:conform`` by default (it turns any payload
into a valid one of the output type), so a drawn mesh also *runs*: ``meshc test`` on
it exercises the whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, overload

import yaml
from meshc.extras import MissingExtra, message

try:
    from hypothesis import strategies as st
except ImportError as err:
    raise MissingExtra(message("testing", "meshc.testing.meshgen", ["hypothesis"])) from err

CONFORM = "meshc.testing.handlers:conform"
_LANE_WORDS = ("alpha", "beta", "gamma", "delta", "north", "south")
_FIELD_NAMES = ("title", "score", "count", "tags", "meta", "ratio", "flag", "notes", "detail")
_FIELD_TYPES = (
    "str",
    "int",
    "float",
    "bool",
    "any",
    "list[str]",
    "dict[str, int]",
    "str | None",
    "list[int] | None",
    "@",
    "list[@]",
    "@ | None",
)


@dataclass
class _Mesh:
    """The parts of a mesh file being drawn."""

    flow: int = 0
    keys: dict[str, str] = field(default_factory=dict)
    types: dict[str, dict[str, str]] = field(default_factory=dict)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    lanes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        return f"F{self.flow}Detail"


@overload
def meshes(
    *,
    as_yaml: Literal[False] = False,
    handler: str = ...,
    max_flows: int = ...,
    max_stages: int = ...,
) -> st.SearchStrategy[dict[str, Any]]: ...


@overload
def meshes(
    *, as_yaml: Literal[True], handler: str = ..., max_flows: int = ..., max_stages: int = ...
) -> st.SearchStrategy[str]: ...


def meshes(
    *, as_yaml: bool = False, handler: str = CONFORM, max_flows: int = 2, max_stages: int = 3
) -> st.SearchStrategy[dict[str, Any]] | st.SearchStrategy[str]:
    """Valid mesh files: dicts ready for ``yaml.safe_dump``, or with ``as_yaml`` the text.

    ``handler`` is the specialists' handler; the default makes every drawn mesh runnable.
    """
    docs = _mesh_docs(handler, max(1, max_flows), max(1, max_stages))
    if as_yaml:
        return docs.map(lambda doc: yaml.safe_dump(doc, sort_keys=False))
    return docs


@st.composite
def _mesh_docs(draw: st.DrawFn, handler: str, max_flows: int, max_stages: int) -> dict[str, Any]:
    m = _Mesh()
    for f in range(draw(st.integers(1, max_flows))):
        m.flow = f
        m.keys = {"id": "str", **({"seq": "int"} if draw(st.booleans()) else {})}
        intake = f"f{f}.tasks"
        task = _new_type(draw, m, f"F{f}Task")
        m.streams[intake] = {"type": task}
        m.agents[f"f{f}_producer"] = {"role": "producer", "writes": [intake]}
        for c in range(draw(st.integers(1, 2))):
            _chain(draw, m, handler, max_stages, intake, task, f"f{f}.c{c}")
    doc: dict[str, Any] = {
        "mesh": "gen_" + draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789", max_size=8)),
        "version": draw(st.integers(0, 9)),
        "description": "drawn by meshc.testing.meshes()",
        "types": m.types,
        "streams": m.streams,
    }
    if m.lanes:
        doc["lanes"] = m.lanes
    doc["agents"] = m.agents
    if draw(st.booleans()):
        doc["defaults"] = {"max_deliveries": draw(st.integers(2, 6)), "visibility_timeout": "30s"}
    partitions = draw(st.integers(1, 3))
    if partitions > 1:
        doc["partitions"] = partitions
        if draw(st.booleans()):
            doc["partition_key"] = "id"
    return doc


def _chain(
    draw: st.DrawFn, m: _Mesh, handler: str, max_stages: int, stream: str, type_: str, base: str
) -> None:
    for s in range(draw(st.integers(1, max_stages))):
        prefix = f"{base}.s{s}"
        if draw(st.booleans()):
            stream, type_ = _step(draw, m, handler, prefix, stream)
        else:
            stream, type_ = _fan(draw, m, handler, prefix, stream, type_)
    m.streams[stream]["terminal"] = True


def _agent_name(prefix: str) -> str:
    return prefix.replace(".", "_")


def _policy(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["concurrency"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        out["replicas"] = draw(st.integers(1, 2))
    return out


def _step(draw: st.DrawFn, m: _Mesh, handler: str, prefix: str, source: str) -> tuple[str, str]:
    out_type = _new_type(draw, m, _type_name(prefix, "Out"))
    out = f"{prefix}.out"
    m.streams[out] = {"type": out_type}
    m.agents[_agent_name(prefix)] = {
        "role": "specialist",
        "reads": [source],
        "writes": [out],
        "handler": handler,
        **({"deterministic": False} if draw(st.integers(0, 5)) == 0 else {}),
        **_policy(draw),
    }
    return out, out_type


def _fan(
    draw: st.DrawFn, m: _Mesh, handler: str, prefix: str, source: str, in_type: str
) -> tuple[str, str]:
    name = _agent_name(prefix)
    if draw(st.booleans()):
        lanes = draw(st.lists(st.sampled_from(_LANE_WORDS), min_size=2, max_size=4, unique=True))
        family: dict[str, Any] = {"names": lanes}
    else:
        count = draw(st.integers(2, 4))
        lanes, family = [str(i) for i in range(count)], {"count": count}
    part_type = _new_type(draw, m, _type_name(prefix, "Part"))
    merged_type = _type_name(prefix, "Merged")
    m.types[merged_type] = {**m.keys, "parts": "dict[str, any]", "missing": "list[str]"}
    merged = f"{prefix}.out"
    m.streams[merged] = {"type": merged_type}
    if draw(st.booleans()):
        m.lanes[name] = {
            **family,
            "input": {"stream": f"{prefix}.in.{{lane}}", "type": in_type},
            "output": {"stream": f"{prefix}.part.{{lane}}", "type": part_type},
            "agent": {"name": f"{name}_{{lane}}", "handler": handler, **_policy(draw)},
        }
        ins, outs = [f"@{name}.input"], [f"@{name}.output"]
    else:
        ins = [f"{prefix}.in.{lane}" for lane in lanes]
        outs = [f"{prefix}.part.{lane}" for lane in lanes]
        for lane, i, o in zip(lanes, ins, outs, strict=True):
            m.streams[i] = {"type": in_type}
            m.streams[o] = {"type": part_type}
            m.agents[f"{name}_{lane}"] = {
                "role": "specialist",
                "reads": [i],
                "writes": [o],
                "handler": handler,
                **_policy(draw),
            }
    m.agents[f"{name}_split"] = {"role": "coordinator", "reads": [source], "writes": ins}
    m.agents[f"{name}_join"] = {
        "role": "aggregator",
        "reads": outs,
        "writes": [merged],
        "join": {"on": list(m.keys), "timeout": "30s"},
        **_policy(draw),
    }
    return merged, merged_type


def _type_name(prefix: str, what: str) -> str:
    return "".join(part.capitalize() for part in prefix.split(".")) + what


def _new_type(draw: st.DrawFn, m: _Mesh, name: str) -> str:
    """Declare a type: the flow's keys plus up to three drawn fields."""
    names = draw(st.lists(st.sampled_from(_FIELD_NAMES), max_size=3, unique=True))
    fields = dict(m.keys)
    for fname in names:
        expr = draw(st.sampled_from(_FIELD_TYPES))
        if "@" in expr:
            expr = expr.replace("@", m.detail)
            m.types.setdefault(
                m.detail, {"label": "str", "weight": "float", "next": f"{m.detail} | None"}
            )
        fields[fname] = expr
    m.types[name] = fields
    return name
