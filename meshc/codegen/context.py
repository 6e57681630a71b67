"""Everything the templates print, worked out in Python first.

Templates hold no logic: names, literals and order are computed here, and the
templates lay out the code around them (``topology.py.j2`` writes each
``StreamSpec(...)`` and ``AgentSpec(...)`` call out in full). Every string that comes
from a mesh file reaches generated code either through ``py()`` (``repr`` of a
``str``), which always yields one inert Python literal, or as a name the schema has
already held to its grammar (type names, a handler's ``module:function``), so no text
in a mesh file can become code.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import networkx as nx
from meshc import __version__
from meshc.codegen.acl import acl_rules, operator_name, operator_rule, username
from meshc.codegen.fingerprint import digest, mesh_fingerprint, stream_forms
from meshc.core import CoreAgent, CoreMesh, CoreStream
from meshc.typeexpr import TypeExpr, parse_type

BUILTIN_HANDLERS = {"fanout", "merge", "llm"}


LITERAL_WIDTH = 72  # a string literal longer than this is split (ruff's limit is 100)


def py(value: Any, *, wrap: bool = False) -> str:
    """A Python literal for plain data (str, int, float, bool, None, tuples, dicts).

    ``wrap`` splits long strings (LLM prompts) over several lines; see ``_wrapped``.
    """
    if isinstance(value, str):
        return _wrapped(value) if wrap else repr(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        inner = ", ".join(py(v, wrap=wrap) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        items = (f"{py(k)}: {py(v, wrap=wrap)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"no literal for {type(value).__name__}")


def _wrapped(text: str) -> str:
    """``repr`` of a str; a long one (an LLM prompt) as adjacent literals in parentheses,
    split after spaces and line breaks, so that no generated line outgrows the limit."""
    if len(repr(text)) <= LITERAL_WIDTH:
        return repr(text)
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text):
        if current and len(repr(current + piece)) > LITERAL_WIDTH:
            chunks.append(current)
            current = ""
        current += piece
    chunks.append(current)
    return "(" + " ".join(repr(c) for c in chunks) + ")"


def _pieces(text: str) -> list[str]:
    """Words with the space or line break after them; overlong words cut to fit."""
    out: list[str] = []
    for word in re.split(r"(?<=[ \n])", text):
        while len(repr(word)) > LITERAL_WIDTH:
            cut = 1
            while cut < len(word) and len(repr(word[: cut + 1])) <= LITERAL_WIDTH:
                cut += 1
            out.append(word[:cut])
            word = word[cut:]
        if word:
            out.append(word)
    return out


@dataclass(frozen=True)
class FieldCtx:
    name: str
    annotation: str
    default: str | None


@dataclass(frozen=True)
class TypeCtx:
    name: str
    doc: str
    fields: list[FieldCtx]


@dataclass(frozen=True)
class StreamCtx:
    """The arguments of one ``StreamSpec(...)``: literals, and the model's type name."""

    name: str
    model: str
    maxlen: str
    max_age: str
    terminal: str
    max_backlog: str
    fingerprint: str
    form: str


@dataclass(frozen=True)
class JoinCtx:
    """The arguments of an aggregator's ``JoinSpec(...)``, as literals."""

    on: str
    timeout: str
    lanes: str


@dataclass(frozen=True)
class AgentCtx:
    """One agent: its module's names, and the literals of its ``AgentSpec(...)``.

    ``handler_module``/``handler_function`` name an imported handler, ``builtin`` (a
    literal) a built-in one; neither is set for a producer.
    """

    name: str
    role: str
    module: str
    handler_module: str | None
    handler_function: str | None
    builtin: str | None
    literal_name: str
    literal_role: str
    reads: str
    writes: str
    handler: str
    policy: list[tuple[str, str]]
    deterministic: str
    join: JoinCtx | None
    settings: str


@dataclass(frozen=True)
class MeshCtx:
    header: list[str]
    name: str
    literal_name: str
    version: int
    partitions: int
    partition_key: str
    source_path: str
    uses_any: bool
    types: list[TypeCtx]
    streams: list[StreamCtx]
    agents: list[AgentCtx]
    acl: list[tuple[str, str]]
    acl_users: list[tuple[str, str]]
    operator: tuple[str, str]
    mermaid: str
    fingerprint: str
    readme_rows: list[tuple[str, str, str, str]]
    spec_imports: list[str]


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def build_context(core: CoreMesh, source_path: str, raw: bytes, mermaid: str) -> MeshCtx:
    header = textwrap.wrap(
        f"Generated by meshc {__version__} from {source_path} "
        f"(sha256:{content_hash(raw)}). Do not edit: change the mesh file and run meshc compile.",
        width=96,
        break_on_hyphens=False,
    )
    types = [_type_ctx(name, core.types[name]) for name in _type_order(core)]
    agents = [_agent_ctx(core, a) for a in _sorted(core.agents)]
    forms = stream_forms(core)
    uses_any = any("Any" in f.annotation for t in types for f in t.fields)
    return MeshCtx(
        header=header,
        name=core.name,
        literal_name=py(core.name),
        version=core.version,
        partitions=core.partitions,
        partition_key=py(core.partition_key),
        source_path=source_path,
        uses_any=uses_any,
        types=types,
        streams=[_stream_ctx(s, forms[s.name]) for s in _sorted(core.streams)],
        agents=agents,
        acl=[(py(name), py(rule)) for name, rule in sorted(acl_rules(core).items())],
        acl_users=[(py(name), py(username(core.name, name))) for name in sorted(core.agents)],
        operator=(py(operator_name(core.name)), py(operator_rule(core))),
        mermaid=mermaid,
        fingerprint=py(mesh_fingerprint(core, [_agent_literals(a) for a in agents])),
        readme_rows=[
            (a.name, a.role, ", ".join(a.read_names) or "-", ", ".join(a.write_names) or "-")
            for a in _sorted(core.agents)
        ],
        spec_imports=[
            n
            for n, used in (
                ("AgentSpec", True),
                ("JoinSpec", any(a.join is not None for a in core.agents.values())),
                ("MeshSpec", True),
                ("Policy", True),
                ("StreamSpec", True),
            )
            if used
        ],
    )


def _sorted(table: dict[str, Any]) -> list[Any]:
    return [table[k] for k in sorted(table)]


def _type_order(core: CoreMesh) -> list[str]:
    """Types before the types that use them (ties by name), for readable modules."""
    graph = nx.DiGraph()
    for name, fields in core.types.items():
        graph.add_node(name)
        for text in fields.values():
            for ref in parse_type(text).refs():
                if ref in core.types and ref != name:
                    graph.add_edge(ref, name)
    try:
        return list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:
        return sorted(core.types)


def _type_ctx(name: str, fields: dict[str, str]) -> TypeCtx:
    out = []
    for fname in fields:
        expr: TypeExpr = parse_type(fields[fname])
        default = "None" if expr.kind == "optional" else None
        out.append(FieldCtx(fname, expr.python(), default))
    return TypeCtx(name, f"Message type `{name}`.", out)


def _agent_literals(a: AgentCtx) -> tuple[str, ...]:
    """An agent as the literals of its ``AgentSpec(...)``: what the mesh fingerprint hashes."""
    join = (a.join.on, a.join.timeout, a.join.lanes) if a.join else ("",)
    policy = ",".join(f"{k}={v}" for k, v in a.policy)
    fixed = (a.literal_name, a.literal_role, a.reads, a.writes, a.handler, policy)
    return (*fixed, a.deterministic, *join, a.settings)


def _stream_ctx(s: CoreStream, form: str) -> StreamCtx:
    retention = s.retention
    return StreamCtx(
        name=py(s.name),
        model=s.type,
        maxlen=py(retention.maxlen if retention else None),
        max_age=py(retention.max_age if retention else None),
        terminal=py(s.terminal),
        max_backlog=py(s.max_backlog),
        fingerprint=py(digest(form)),
        form=py(form, wrap=True),
    )


def _agent_ctx(core: CoreMesh, agent: CoreAgent) -> AgentCtx:
    handler = agent.handler or _default_handler(agent)
    module = function = builtin = None
    if handler in BUILTIN_HANDLERS:
        builtin = py(handler)
    elif handler is not None:
        module, _, function = handler.partition(":")
    settings: dict[str, Any] = {}
    if agent.model is not None:
        settings["model"] = agent.model.model_dump(mode="json")
    if agent.prompt is not None:
        settings["prompt"] = agent.prompt
    return AgentCtx(
        name=agent.name,
        role=agent.role,
        module=agent.name,
        handler_module=module,
        handler_function=function,
        builtin=builtin,
        literal_name=py(agent.name),
        literal_role=py(agent.role),
        reads=py(agent.read_names),
        writes=py(agent.write_names),
        handler=py(handler or ""),
        policy=[(k, py(v)) for k, v in agent.policy.items()],
        deterministic=py(agent.deterministic),
        join=_join_ctx(core, agent),
        settings=py(settings, wrap=True),
    )


def _default_handler(agent: CoreAgent) -> str | None:
    return {"coordinator": "fanout", "aggregator": "merge"}.get(agent.role)


def _join_ctx(core: CoreMesh, agent: CoreAgent) -> JoinCtx | None:
    if agent.join is None:
        return None
    lanes = {r: core.lane_of(r) for r in agent.read_names}
    return JoinCtx(on=py(tuple(agent.join.on)), timeout=py(agent.join.timeout), lanes=py(lanes))
