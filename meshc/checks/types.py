"""Type checks (MESH2xx): declared types, field expressions, joins, fan widths."""

from __future__ import annotations

import keyword
from collections.abc import Iterator
from dataclasses import dataclass

from meshc import codes
from meshc.core import CoreAgent, CoreMesh
from meshc.diagnostics import Diagnostic, Span
from meshc.graph import Index
from meshc.source import Source
from meshc.typeexpr import BUILTINS, MODEL_NAMES, TypeExpr, TypeSyntaxError, parse_type
from pydantic import BaseModel


def parsed_types(core: CoreMesh) -> dict[str, dict[str, TypeExpr | None]]:
    """Each type's fields parsed; None where the expression is malformed."""
    out: dict[str, dict[str, TypeExpr | None]] = {}
    for tname, fields in core.types.items():
        parsed: dict[str, TypeExpr | None] = {}
        for fname, text in fields.items():
            try:
                parsed[fname] = parse_type(text)
            except TypeSyntaxError:
                parsed[fname] = None
        out[tname] = parsed
    return out


def _bad_identifier(name: str) -> bool:
    return (
        not name.isidentifier()
        or not name.isascii()
        or keyword.iskeyword(name)
        or name.startswith(("_", "model_"))
        or name in ("None", "True", "False")
    )


def check_type_names(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    for tname, fields in core.types.items():
        if _bad_identifier(tname) or tname in BUILTINS:
            yield codes.TYPE_NAME.at(
                source.key_span(("types", tname)),
                f"type name `{tname}` is not usable as a class name",
                help_text="use a CapWords identifier such as `ReviewTask`",
            )
        for fname in fields:
            if _bad_identifier(fname):
                yield codes.TYPE_NAME.at(
                    source.key_span(("types", tname, fname)),
                    f"field name `{fname}` of type `{tname}` is not an identifier",
                    help_text="use a snake_case identifier such as `doc_id`",
                )


def check_reserved_names(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    """Names that validate as identifiers but break the generated models (MESH211)."""
    for tname, fields in core.types.items():
        if tname in MODEL_NAMES and tname not in BUILTINS:  # MESH210 has the builtins
            yield codes.RESERVED_NAME.at(
                source.key_span(("types", tname)),
                f"type name `{tname}` would replace {MODEL_NAMES[tname]} in the generated "
                "models module",
                help_text=f"rename the type, e.g. `{tname[:1].upper()}{tname[1:]}Message`",
            )
        for fname in fields:
            clash = None if _bad_identifier(fname) else _field_clash(fname, core.types)
            if clash:
                yield codes.RESERVED_NAME.at(
                    source.key_span(("types", tname, fname)),
                    f"field name `{fname}` of type `{tname}` {clash}",
                    help_text=f"rename the field, e.g. `{_renamed(fname, core.types)}`",
                )


def _field_clash(fname: str, types: dict[str, dict[str, str]]) -> str | None:
    if fname in MODEL_NAMES or fname in types:
        what = MODEL_NAMES.get(fname) or f"the message type `{fname}`"
        return f"would hide {what} from its model's annotations"
    if hasattr(BaseModel, fname):  # as pydantic asks: its methods, its metaclass's (`register`)
        return f"shadows the pydantic model attribute `{fname}` of every message"
    return None


def _renamed(fname: str, types: dict[str, dict[str, str]]) -> str:
    lower = fname.lower()
    return lower if lower != fname and _field_clash(lower, types) is None else f"{lower}_value"


def check_types(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    yield from check_type_names(core, source)
    yield from check_reserved_names(core, source)
    declared = set(core.types)
    used: set[str] = set()
    uses: dict[str, list[_Use]] = {}  # undeclared type → where it is used
    for tname, fields in core.types.items():
        for fname, text in fields.items():
            path = ("types", tname, fname)
            try:
                expr = parse_type(text)
            except TypeSyntaxError as err:
                yield codes.BAD_TYPE_EXPR.at(
                    source.span(path),
                    f"field `{fname}` of type `{tname}`: {err}",
                    help_text="write `str`, `int`, `float`, `bool`, `any`, a type name, "
                    "`list[T]`, `dict[str, T]` or `T | None`",
                )
                continue
            used |= expr.refs()
            for missing in sorted(expr.refs() - declared):
                where = f"field `{fname}` of type `{tname}`"
                uses.setdefault(missing, []).append(_Use(source.span(path), where, []))
    by_template: dict[tuple[str | int, ...], _Use] = {}
    for name, stream in core.streams.items():
        used.add(stream.type)
        if stream.type not in declared and stream.type not in core.dropped:
            base = stream.path[:-1] if stream.family else stream.path
            type_path: tuple[str | int, ...] = (*base, "type")
            if type_path not in by_template:  # the lanes of a family share one template
                where = f"stream `{name}`"
                if stream.family:
                    where = f"the {base[-1]} stream template of lane family `{stream.family}`"
                by_template[type_path] = _Use(source.span(type_path), where, [])
                uses.setdefault(stream.type, []).append(by_template[type_path])
            by_template[type_path].streams.append(name)
    for missing in sorted(uses):
        yield _undeclared(missing, sorted(uses[missing]), declared)
    yield from _type_cycles(core, source)
    for tname in sorted(declared - used - core.dropped):
        yield codes.UNUSED_TYPE.at(
            source.key_span(("types", tname)),
            f"type `{tname}` is used by no stream and no other type",
            help_text="remove it, or use it as a stream's `type`",
            subjects=(tname,),
        )


@dataclass(order=True)
class _Use:
    """One place that names an undeclared type, and the streams it types there."""

    span: Span
    where: str
    streams: list[str]


def _undeclared(name: str, places: list[_Use], declared: set[str]) -> Diagnostic:
    """One error per undeclared type, at its first use; every other use is a note.

    It breaks the type's name, the type "did you mean" offers (now unused) and every
    stream of the type: what is said about them follows from this typo.
    """
    import difflib

    close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.6)
    fix = f"did you mean `{close[0]}`?" if close else f"declare `{name}` under `types`"
    first, *others = places
    return codes.UNDECLARED_TYPE.at(
        first.span,
        f"{first.where} uses undeclared type `{name}`",
        help_text=fix,
        related=[(use.span, f"{use.where} also uses `{name}` here") for use in others],
        breaks=(name, *close, *(s for use in places for s in use.streams)),
    )


def _type_cycles(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    edges = [
        (tname, expr.name)
        for tname, fields in parsed_types(core).items()
        for expr in fields.values()
        if expr is not None and expr.kind == "ref" and expr.name in core.types
    ]
    if not edges:
        return  # no type holds another: no cycle, and no need for networkx
    import networkx as nx

    graph = nx.DiGraph(edges)
    for component in nx.strongly_connected_components(graph):
        nodes = sorted(component)
        if len(nodes) == 1 and not graph.has_edge(nodes[0], nodes[0]):
            continue
        cycle = [u for u, _ in nx.find_cycle(graph.subgraph(component), source=nodes[0])]
        yield codes.TYPE_CYCLE.at(
            source.key_span(("types", nodes[0])),
            "types contain each other: " + " → ".join([*cycle, cycle[0]]),
            help_text="make one link optional (`T | None`) or a list (`list[T]`)",
        )


def _fields(core: CoreMesh, stream: str) -> dict[str, str] | None:
    s = core.streams.get(stream)
    if s is None:
        return None
    return core.types.get(s.type)


def check_joins(core: CoreMesh, source: Source, index: Index) -> Iterator[Diagnostic]:
    yield from _fan_widths(core, source, index)
    for name, agent in core.agents.items():
        if agent.role == "aggregator" and agent.join is not None:
            yield from _join_keys(core, source, name, agent)
            if agent.handler in (None, "merge"):
                yield from _merge_shape(core, source, name, agent)
        if agent.role == "coordinator" and agent.handler in (None, "fanout"):
            yield from _fanout_types(core, source, name, agent)


def _join_keys(core: CoreMesh, source: Source, name: str, agent: CoreAgent) -> Iterator[Diagnostic]:
    assert agent.join is not None
    for i, key in enumerate(agent.join.on):
        lacking = [
            r.name for r in agent.reads if (f := _fields(core, r.name)) is not None and key not in f
        ]
        if lacking:
            yield codes.JOIN_KEY_MISSING.at(
                source.span((*agent.path, "join", "on", i)),
                f"aggregator `{name}` joins on `{key}`, which the type of "
                + ", ".join(f"`{s}` (`{core.streams[s].type}`)" for s in lacking)
                + " lacks",
                help_text=f"add `{key}` to those types, or remove it from `join.on`",
                subjects=(name, *lacking),
            )


def _fan_widths(core: CoreMesh, source: Source, index: Index) -> Iterator[Diagnostic]:
    """MESH204: each coordinator against the aggregators that join its lanes."""
    roles: list[str | None] = [None] * len(index.names)
    lanes_of: dict[int, list[int]] = {}  # coordinator node → its lanes
    for node, agent, lanes in zip(index.agents, core.agents.values(), index.writes, strict=True):
        roles[node] = agent.role
        if agent.role == "coordinator":
            lanes_of[node] = lanes
    # The fast walk needs streams and agents apart: a name that is both (MESH108)
    # makes one node of the two, and the plain walk is kept for such a mesh.
    apart = len(index.names) == len(core.streams) + len(core.agents)
    joins = joins_of(roles, index.succ, lanes_of, index.topological() if apart else None)
    names = index.names
    for node, (cname, coord) in zip(index.agents, core.agents.items(), strict=True):
        if node not in lanes_of:
            continue
        fan_out = [w for w in coord.write_names if w in core.streams]
        for agg, (reaching_ids, joined) in sorted(joins[node].items(), key=lambda j: names[j[0]]):
            name = names[agg]
            agent = core.agents[name]
            reaching = {names[i] for i in reaching_ids}
            through = [w for w in fan_out if w in reaching]
            if agent.join is None or len(through) == len(joined) == len(fan_out):
                continue
            yield codes.FAN_WIDTH.at(
                source.span((*agent.path, "reads")),
                f"coordinator `{cname}` fans out to {len(fan_out)} lanes but aggregator "
                f"`{name}` joins {len(joined)} of them "
                f"(lanes that never reach it: {_lanes(sorted(set(fan_out) - reaching))})",
                help_text=f"make `{name}` read the output of every lane of `{cname}`",
                related=[(source.key_span(coord.path), f"coordinator `{cname}` is declared here")],
                subjects=(cname, name),
            )


Joins = dict[int, tuple[set[int], set[int]]]


def joins_of(
    roles: list[str | None],
    succ: list[list[int]],
    lanes_of: dict[int, list[int]],
    order: list[int] | None,
) -> dict[int, Joins]:
    """Coordinator → what ``_joined_by`` finds for its lanes; ``order`` is a
    topological order of the nodes, None for a mesh with a cycle (or a node that is
    both an agent and a stream: the fast walk takes lanes to be streams)."""
    joins: dict[int, Joins] = {}
    if order is None:  # a cycle (reported): walk every lane to the end, levels bounded
        for node, lanes in lanes_of.items():
            joins[node] = _joined_by(roles, succ, lanes, len(lanes_of))
        return joins
    closes: dict[int, set[int]] = {}  # downstream coordinators first: each walk skips them
    for node in reversed(order):
        if node in lanes_of:
            joins[node] = _joined_in_dag(roles, succ, lanes_of[node], closes)
            closes[node] = set(joins[node])
    return joins


def _joined_by(
    roles: list[str | None], succ: list[list[int]], lanes: list[int], limit: int
) -> Joins:
    """Aggregator → (the lanes that reach it, the inputs it joins them through).

    Fan-outs nest like brackets: walking down a lane, a coordinator opens a level and
    an aggregator closes one, so the aggregator that joins these lanes is the first
    one met with no level open. Nodes are the integers of ``Index``; levels are
    bounded by ``limit`` (the number of coordinators: a cycle cannot loop forever);
    a (node, level) pair is one integer. Each lane is walked to its end.
    """
    found: Joins = {}
    stride = limit + 1  # levels run from 0 to limit
    for lane in lanes:
        seen = {lane * stride}
        todo = [(lane, 0)]
        while todo:
            node, depth = todo.pop()
            for nxt in succ[node]:
                role = roles[nxt]
                if role == "aggregator" and depth == 0:
                    reaching, joined = found.setdefault(nxt, (set(), set()))
                    reaching.add(lane)
                    joined.add(node)
                    continue
                level = depth + (role == "coordinator") - (role == "aggregator")
                if level <= limit and nxt * stride + level not in seen:
                    seen.add(nxt * stride + level)
                    todo.append((nxt, level))
    return found


def _joined_in_dag(
    roles: list[str | None], succ: list[list[int]], lanes: list[int], closes: dict[int, set[int]]
) -> Joins:
    """``_joined_by`` for an acyclic mesh, given ``closes``: each downstream
    coordinator → the aggregators that join its lanes.

    A coordinator met on the way is not walked into: the level it opens is closed by
    its aggregators, so the walk goes on from them. No level is ever open, so the
    first aggregator met on any path joins these lanes. Each node is walked by the
    nearest coordinator above it, and the whole check is linear in the mesh's size.
    """
    found: Joins = {}
    for lane in lanes:
        seen = {lane}
        todo = [lane]
        while todo:
            node = todo.pop()
            for nxt in succ[node]:
                role = roles[nxt]
                if role == "aggregator":
                    reaching, joined = found.setdefault(nxt, (set(), set()))
                    reaching.add(lane)
                    joined.add(node)
                    continue
                for after in closes[nxt] if role == "coordinator" else (nxt,):
                    if after not in seen:
                        seen.add(after)
                        todo.append(after)
    return found


def _lanes(items: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in items) or "none"


def _merge_shape(
    core: CoreMesh, source: Source, name: str, agent: CoreAgent
) -> Iterator[Diagnostic]:
    for ref in agent.writes:
        fields = _fields(core, ref.name)
        if fields is None:
            continue
        lacking = [f for f in ("parts", "missing") if f not in fields]
        if lacking:
            yield codes.MERGE_SHAPE.at(
                source.key_span(agent.path),
                f"aggregator `{name}` uses the default merge, but the type of `{ref.name}` "
                f"lacks {_lanes(lacking)}",
                help_text="add `parts: dict[str, any]` and `missing: list[str]` to "
                f"`{core.streams[ref.name].type}`, or give `{name}` a handler",
                subjects=(name, ref.name),
            )


def _fanout_types(
    core: CoreMesh, source: Source, name: str, agent: CoreAgent
) -> Iterator[Diagnostic]:
    in_types = {core.streams[r].type for r in agent.read_names if r in core.streams}
    for ref in agent.writes:
        s = core.streams.get(ref.name)
        if s is not None and in_types and s.type not in in_types:
            yield codes.FANOUT_TYPE.at(
                source.span(ref.path),
                f"coordinator `{name}` copies its input (`{'`, `'.join(sorted(in_types))}`) "
                f"to `{ref.name}`, whose type is `{s.type}`",
                help_text=f"give `{ref.name}` the input's type, or write a coordinator handler",
                subjects=(name, ref.name, *agent.read_names),
            )


def check_partition_key(core: CoreMesh, source: Source) -> Iterator[Diagnostic]:
    key = core.partition_key
    if key is None:
        return
    intakes = {r.name for a in core.agents.values() if a.role == "producer" for r in a.writes}
    for stream in sorted(intakes):
        fields = _fields(core, stream)
        if fields is not None and key not in fields:
            yield codes.PARTITION_KEY.at(
                source.span(("partition_key",)),
                f"partition_key `{key}` is not a field of intake `{stream}` "
                f"(type `{core.streams[stream].type}`)",
                help_text=f"add `{key}` to that type, or choose one of: "
                + ", ".join(f"`{f}`" for f in fields),
                subjects=(stream,),
            )
