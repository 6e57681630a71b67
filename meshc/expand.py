"""Shorthands (lane families, N slots) → the core mesh of ``meshc.core``.

Every record made here remembers the YAML path it came from, so a diagnostic about
an expanded lane still points at the line that made it.
"""

from __future__ import annotations

import dataclasses
import re
from itertools import count, repeat
from typing import Any

from meshc import codes
from meshc.core import CoreAgent, CoreMesh, CoreStream, Ref
from meshc.diagnostics import Diagnostic
from meshc.model import (
    HANDLER_PATTERN,
    Agent,
    LaneAgent,
    LaneFamily,
    Mesh,
    Policy,
    effective_policy,
)
from meshc.source import Path, Source

# What an agent made from a lane family's template takes from it as it is: every
# field but those rewritten per lane.
_TEMPLATE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(LaneAgent)
    if f.name not in ("name", "role", "description", "handler")
)


def lane_names(family: LaneFamily) -> list[str]:
    if family.names is not None:
        return list(family.names)
    return [str(i) for i in range(family.count or 0)]


def expand(
    mesh: Mesh, source: Source, dropped: frozenset[str] = frozenset()
) -> tuple[CoreMesh, list[Diagnostic]]:
    diags: list[Diagnostic] = []
    streams: dict[str, CoreStream] = {}
    agents: dict[str, CoreAgent] = {}
    families: dict[str, tuple[str, ...]] = {}
    refs: dict[str, tuple[list[str], list[str]]] = {}
    shared = effective_policy(Policy(), mesh.defaults)  # of every agent that sets none
    for fname, family in mesh.lanes.items():
        diags.extend(_family_shape(source, fname, family))
        lanes = lane_names(family)
        families[fname] = tuple(lanes)
        ins, outs = _expand_family(mesh, fname, family, lanes, streams, agents, shared)
        refs[fname] = (ins, outs)
    for name, stream in mesh.streams.items():
        _put(streams, diags, source, name, _core_stream(name, stream), "streams")
    spared: set[str] = set()
    for name, agent in mesh.agents.items():
        before = len(diags)
        reads = _refs(source, diags, refs, ("agents", name, "reads"), agent.reads, dropped)
        writes = _refs(source, diags, refs, ("agents", name, "writes"), agent.writes, dropped)
        if len(diags) > before:
            spared.add(name)  # its lists lost a bad reference: spare it the follow-ups
        item = _core_agent(mesh, name, agent, reads, writes, shared)
        _put(agents, diags, source, name, item, "agents")
    core = CoreMesh(
        name=mesh.mesh,
        version=mesh.version,
        description=mesh.description,
        types=mesh.types,
        streams=streams,
        agents=agents,
        partitions=mesh.partitions,
        partition_key=mesh.partition_key,
        families=families,
        dropped=dropped | spared,
    )
    return core, diags


def _family_shape(source: Source, fname: str, family: LaneFamily) -> list[Diagnostic]:
    if (family.names is None) == (family.count is None):
        return [
            codes.SCHEMA.at(
                source.key_span(("lanes", fname)),
                f"lane family `{fname}` needs exactly one of `names` (a lane family) "
                "or `count` (N parallel slots)",
                help_text="write `names: [a, b, c]` or `count: 4`",
            )
        ]
    names = lane_names(family)
    if len(set(names)) != len(names) or not names:
        return [
            codes.SCHEMA.at(
                source.span(("lanes", fname, "names")),
                f"lane family `{fname}` needs distinct, non-empty lane names",
                help_text="list each lane once",
            )
        ]
    problems = _handler_template(source, fname, family, names)
    for side in ("input", "output"):
        template = getattr(family, side).stream
        if "{lane}" not in template:
            problems.append(
                codes.SCHEMA.at(
                    source.span(("lanes", fname, side, "stream")),
                    f"the {side} stream template of lane family `{fname}` has no "
                    "`{lane}` placeholder, so every lane would share one stream",
                    help_text=f"write it like `{template}.{{lane}}`",
                )
            )
    return problems


def _handler_template(
    source: Source, fname: str, family: LaneFamily, names: list[str]
) -> list[Diagnostic]:
    """A handler template must give `package.module:function` (or a built-in) per lane."""
    template = family.agent.handler
    if template is None:
        return []
    bad = [n for n in names if not re.match(HANDLER_PATTERN, template.replace("{lane}", n))]
    if not bad:
        return []
    return [
        codes.SCHEMA.at(
            source.span(("lanes", fname, "agent", "handler")),
            f"the handler template `{template}` of lane family `{fname}` gives "
            f"`{template.replace('{lane}', bad[0])}` for lane `{bad[0]}`, which is not "
            "`package.module:function` or a built-in",
            help_text="write `package.module:function`; `{lane}` may stand for an identifier "
            "part (rename lanes that are not identifiers)",
        )
    ]


def _expand_family(
    mesh: Mesh,
    fname: str,
    family: LaneFamily,
    lanes: list[str],
    streams: dict[str, CoreStream],
    agents: dict[str, CoreAgent],
    shared: dict[str, Any],
) -> tuple[list[str], list[str]]:
    ins, outs = [], []
    base: Path = ("lanes", fname)
    for lane in lanes:
        in_name = family.input.stream.replace("{lane}", lane)
        out_name = family.output.stream.replace("{lane}", lane)
        ins.append(in_name)
        outs.append(out_name)
        for name, side in ((in_name, family.input), (out_name, family.output)):
            which = "input" if side is family.input else "output"
            streams.setdefault(
                name,
                CoreStream(
                    name,
                    side.type,
                    (*base, which, "stream"),
                    side.description,
                    retention=side.retention,
                    family=fname,
                    lane=lane,
                ),
            )
        template = family.agent
        agent_name = template.name.replace("{lane}", lane)
        handler = template.handler.replace("{lane}", lane) if template.handler else None
        agent = Agent(
            **{name: getattr(template, name) for name in _TEMPLATE_FIELDS},
            role=template.role,
            description=template.description.replace("{lane}", lane),
            reads=[in_name],
            writes=[out_name],
        )
        agents.setdefault(
            agent_name,
            CoreAgent(
                name=agent_name,
                role=template.role.value,
                reads=(Ref(in_name, (*base, "input", "stream")),),
                writes=(Ref(out_name, (*base, "output", "stream")),),
                at=(*base, "agent"),
                policy=effective_policy(agent, mesh.defaults, shared),
                handler=handler,
                description=agent.description,
                deterministic=template.deterministic,
                model=template.model,
                prompt=template.prompt,
                family=fname,
                lane=lane,
            ),
        )
    return ins, outs


def _refs(
    source: Source,
    diags: list[Diagnostic],
    families: dict[str, tuple[list[str], list[str]]],
    path: Path,
    names: list[str],
    dropped: frozenset[str] = frozenset(),
) -> tuple[Ref, ...]:
    if not any(name.startswith("@") for name in names):
        return tuple(map(Ref, names, repeat(path), count()))  # the common case
    out: list[Ref] = []
    for i, name in enumerate(names):
        here = (*path, i)
        if not name.startswith("@"):
            out.append(Ref(name, path, i))
            continue
        fam, _, side = name[1:].partition(".")
        if fam in dropped:
            continue  # the family itself is broken, and reported
        if fam not in families or side not in ("input", "output"):
            known = ", ".join(f"`{f}`" for f in families) or "none declared"
            diags.append(
                codes.BAD_REFERENCE.at(
                    source.span(here),
                    f"`{name}` names no lane family side (families: {known}; sides: input, output)",
                    help_text="write `@<family>.input` or `@<family>.output` for a family "
                    "declared under `lanes`",
                    breaks=(str(path[1]),),
                )
            )
            continue
        ins, outs = families[fam]
        out.extend(Ref(s, here) for s in (ins if side == "input" else outs))
    return tuple(out)


def _core_stream(name: str, stream: Any) -> CoreStream:
    return CoreStream(
        name,
        stream.type,
        None,  # at ("streams", name)
        stream.description,
        stream.terminal,
        stream.retention,
        stream.max_backlog,
    )


def _core_agent(
    mesh: Mesh,
    name: str,
    agent: Agent,
    reads: tuple[Ref, ...],
    writes: tuple[Ref, ...],
    shared: dict[str, Any],
) -> CoreAgent:
    return CoreAgent(
        name,
        agent.role.value,
        reads,
        writes,
        None,  # at ("agents", name)
        effective_policy(agent, mesh.defaults, shared),
        agent.handler,
        agent.description,
        agent.deterministic,
        agent.join,
        agent.model,
        agent.prompt,
    )


def _put(
    table: dict[str, Any],
    diags: list[Diagnostic],
    source: Source,
    name: str,
    item: Any,
    section: str,
) -> None:
    found = table.setdefault(name, item)  # one lookup: most names are new
    if found is not item:
        first = found.path
        diags.append(
            codes.BAD_NAME.at(
                source.key_span((section, name)),
                f"`{name}` is declared here and also made by lane family `{first[1]}`",
                help_text="rename one of them; a name may be used once",
                related=[(source.span(first), f"lane family `{first[1]}` makes `{name}`")],
            )
        )
