"""Findings about the mesh as a whole, its lane families and its streams."""

from __future__ import annotations

from dataclasses import replace

from meshc.core import CoreMesh, CoreStream
from meshc.diff.findings import Condition, Finding, names, worst
from meshc.diff.query import aggregators, readers, running, writer

Acts = tuple[tuple[str, str], ...]


def _restart_all(mesh: CoreMesh) -> Acts:
    return tuple(("restart", a) for a in running(mesh))


def mesh_findings(old: CoreMesh, new: CoreMesh) -> list[Finding]:
    out: list[Finding] = []
    subject = new.name
    if old.name != new.name:
        out.append(_renamed(old, new))
    if old.version != new.version:
        out.append(
            Finding(
                "mesh-version",
                "mesh",
                subject,
                "changed",
                f"version {old.version} → {new.version}",
                "safe",
                reason="a label for people: nothing reads it at run time",
            )
        )
    if old.description != new.description:
        out.append(
            Finding("mesh-description", "mesh", subject, "changed", "description changed", "safe")
        )
    if old.partitions != new.partitions:
        conditions = [Condition("unprocessed", tuple(sorted(old.streams)))]
        if aggregators(old):
            conditions.append(Condition("joins", agents=aggregators(old)))
        out.append(
            Finding(
                "partitions-changed",
                "mesh",
                subject,
                "changed",
                f"partitions {old.partitions} → {new.partitions}",
                "breaks",
                reason="stream keys and the partition of every task change: entries under "
                "the old keys, and open joins, would never be finished",
                advice="let the mesh drain (no lag, no pending, no open join), then restart "
                "every agent; the old keys stay on the server until deleted",
                clear="restart",
                conditions=tuple(conditions),
                acts=_restart_all(new),
            )
        )
    if old.partition_key != new.partition_key:
        before, after = old.partition_key or "trace", new.partition_key or "trace"
        out.append(
            Finding(
                "partition-key-changed",
                "mesh",
                subject,
                "changed",
                f"partition_key `{before}` → `{after}`",
                "safe",
                reason="only tasks submitted from now on are routed by it; a task "
                "in flight stays in its partition with every one of its entries",
            )
        )
    return out


def _renamed(old: CoreMesh, new: CoreMesh) -> Finding:
    """A new mesh name moves every key named after the mesh: dead letters, join state,
    caches, and with partitions every stream key."""
    conditions = []
    if old.partitions > 1:
        conditions.append(Condition("unprocessed", tuple(sorted(old.streams))))
    if aggregators(old):
        conditions.append(Condition("joins", agents=aggregators(old)))
    moved = "dead letters, join state and LLM caches"
    if old.partitions > 1:
        moved = "stream keys, " + moved
    return Finding(
        "mesh-renamed",
        "mesh",
        new.name,
        "changed",
        f"mesh renamed `{old.name}` → `{new.name}`",
        "breaks" if conditions else "restart",
        reason=f"the keys named after the mesh ({moved}) stay under `{old.name}`",
        advice="let the mesh drain first; re-drive dead letters before the change",
        clear="restart" if conditions else None,
        conditions=tuple(conditions),
        acts=_restart_all(new),
    )


def family_findings(old: CoreMesh, new: CoreMesh) -> list[Finding]:
    """Lane families added, removed or given other lanes. Their level is the worst of
    the findings about their streams and agents (set by :func:`summarize_families`)."""
    out = []
    for name in sorted(set(old.families) | set(new.families)):
        before, after = old.families.get(name), new.families.get(name)
        if before == after:
            continue
        if before is None or after is None:
            change = "added" if before is None else "removed"
            lanes = after or before or ()
            message = f"lane family `{name}` {change} ({', '.join(lanes)})"
        else:
            change = "changed"
            plus = [f"+{lane}" for lane in after if lane not in before]
            minus = [f"-{lane}" for lane in before if lane not in after]
            message = f"lanes of `{name}`: {' '.join(plus + minus) or 'reordered'}"
        out.append(
            Finding(
                f"family-{change}",
                "family",
                name,
                change,
                message,
                "safe",
                reason="see the findings about its streams and agents",
                family=name,
            )
        )
    return out


def stream_findings(old: CoreMesh, new: CoreMesh) -> list[Finding]:
    out: list[Finding] = []
    for name in sorted(set(old.streams) | set(new.streams)):
        before, after = old.streams.get(name), new.streams.get(name)
        if before is None and after is not None:
            out.append(
                Finding(
                    "stream-added",
                    "stream",
                    name,
                    "added",
                    f"stream `{name}` added (type `{after.type}`)",
                    "safe",
                    family=after.family,
                )
            )
        elif after is None and before is not None:
            out.append(_removed(old, before))
        elif before is not None and after is not None:
            out.extend(_settings(before, after))
    return out


def _removed(old: CoreMesh, s: CoreStream) -> Finding:
    reading = readers(old, s.name)
    if not reading:
        return Finding(
            "stream-removed",
            "stream",
            s.name,
            "removed",
            f"stream `{s.name}` removed",
            "safe",
            reason="no agent read it",
            advice=f"delete the key `{s.name}` when its entries are no longer wanted",
            family=s.family,
        )
    return Finding(
        "stream-removed",
        "stream",
        s.name,
        "removed",
        f"stream `{s.name}` removed",
        "breaks",
        reason=f"its unprocessed entries would never reach {names(reading)}",
        advice="let its readers finish it before the change; then delete the key",
        clear="safe",
        conditions=(Condition("unprocessed", (s.name,)),),
        streams=(s.name,),
        family=s.family,
    )


_SETTINGS = {
    "description": ("stream-description", "description changed", ""),
    "retention": (
        "stream-retention",
        "retention {old} → {new}",
        "`meshc trim FILE` applies it at once; a `meshc run` started before the change "
        "trims by the old retention until it restarts",
    ),
    "max_backlog": (
        "stream-max-backlog",
        "max_backlog {old} → {new}",
        "`meshc submit` applies it at its next call; other clients when they reload the mesh",
    ),
    "terminal": ("stream-terminal", "terminal {old} → {new}", "status and checks read it"),
}


def _settings(before: CoreStream, after: CoreStream) -> list[Finding]:
    out = []
    for attr, (rule, message, advice) in _SETTINGS.items():
        a, b = getattr(before, attr), getattr(after, attr)
        if a != b:
            text = message.format(old=_setting(a), new=_setting(b))
            out.append(
                Finding(
                    rule,
                    "stream",
                    after.name,
                    "changed",
                    f"stream `{after.name}`: {text}",
                    "safe",
                    advice=advice,
                    family=after.family,
                )
            )
    return out


def _setting(value: object) -> str:
    if value is None:
        return "none"
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        fields = {k: v for k, v in dump().items() if v is not None}
        return (
            "{"
            + ", ".join(
                f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in fields.items()
            )
            + "}"
        )
    return str(value).lower() if isinstance(value, bool) else str(value)


def summarize_families(findings: list[Finding], old: CoreMesh, new: CoreMesh) -> list[Finding]:
    """Give each family finding the worst level of the findings about its members, and
    while some of those depend on a server not read yet, the level they fall to if
    their conditions are clear."""
    out = []
    for f in findings:
        if f.kind != "family":
            out.append(f)
            continue
        members = _members(old, f.subject) | _members(new, f.subject)
        related = [
            g
            for g in findings
            if g.kind != "family" and (g.subject in members or members & set(g.streams))
        ]
        level = worst(g.effective for g in related)
        clear = worst(g.clear if g.depends and g.clear else g.effective for g in related)
        out.append(replace(f, level=level, clear=clear if clear != level else None))
    return out


def _members(mesh: CoreMesh, family: str) -> set[str]:
    streams = {s.name for s in mesh.streams.values() if s.family == family}
    agents = {a.name for a in mesh.agents.values() if a.family == family}
    return streams | agents | {w for s in streams if (w := writer(mesh, s))}
