"""Findings about message types: declarations added or removed, and every change to a
type a stream carries, classified by who reads what (:mod:`meshc.diff.payload`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from meshc.core import CoreMesh
from meshc.diff.findings import Condition, Finding, names
from meshc.diff.payload import RULES, Change, Walk
from meshc.diff.query import readers, runs, writer


def type_findings(old: CoreMesh, new: CoreMesh) -> list[Finding]:
    out = []
    for name in sorted(set(old.types) ^ set(new.types)):
        what = "added" if name in new.types else "removed"
        out.append(Finding(f"type-{what}", "type", name, what, f"type `{name}` {what}", "safe"))
    for change, streams in _changes(old, new).items():
        out.append(classify(change, sorted(streams), old, new))
    return out


def _changes(old: CoreMesh, new: CoreMesh) -> dict[Change, set[str]]:
    """Every change, with the streams (present in both meshes) whose entries it touches.

    Types that keep their name are compared too, so a change to a type no stream
    carries in both versions is still reported (with no stream).
    """
    found: dict[Change, set[str]] = defaultdict(set)
    for name in sorted(set(old.streams) & set(new.streams)):
        walk = Walk(old.types, new.types)
        walk.model(old.streams[name].type, new.streams[name].type, ("stream", name))
        for change in walk.changes:
            found[change].add(name)
    walk = Walk(old.types, new.types)
    for name in sorted(set(old.types) & set(new.types)):
        walk.model(name, name, ("type", name))
    for change in walk.changes:
        found.setdefault(change, set())
    return dict(found)


def classify(change: Change, streams: list[str], old: CoreMesh, new: CoreMesh) -> Finding:
    """Place one change: safe when both directions read, restart when only new readers
    can read old entries (restart readers first), breaks when new readers cannot read
    what a stream may still hold."""
    rule = RULES[change.rule]
    kind, subject = change.origin
    message = f"{kind} `{subject}`: {change.describe()}"
    base = Finding(change.rule, kind, subject, "changed", message, "safe", streams=tuple(streams))
    if rule.backward and rule.forward:
        return replace(base, reason="entries read the same before and after")
    if not streams:
        return replace(base, reason="no stream carries it in both versions")
    read = [s for s in streams if readers(old, s) or readers(new, s)]
    why = [
        w
        for w, ok in ((rule.why_backward, rule.backward), (rule.why_forward, rule.forward))
        if not ok
    ]
    agents = sorted({a for s in streams for a in _users(new, s)})
    base = replace(
        base,
        level="restart",
        reason="; ".join(why),
        acts=tuple(("restart", a) for a in agents),
        advice=_advice(rule.backward, rule.forward, streams, old, new),
    )
    if not rule.backward and read:
        condition = Condition("unprocessed", tuple(read))
        return replace(base, level="breaks", clear="restart", conditions=(condition,))
    return base


def _users(mesh: CoreMesh, stream: str) -> list[str]:
    """The running agents whose models of ``stream`` change: its writer and readers."""
    w = writer(mesh, stream)
    return [a for a in (w, *readers(mesh, stream)) if a is not None and runs(mesh, a)]


def _advice(back: bool, fwd: bool, streams: list[str], old: CoreMesh, new: CoreMesh) -> str:
    """In which order to restart, and what the clients and callers of the streams see."""
    read = [s for s in streams if readers(new, s)]
    rs = sorted({r for s in read for r in readers(new, s)})
    ws = sorted({w for s in read if (w := writer(new, s)) and runs(new, w)})
    steps = []
    if rs and back:
        steps.append(
            f"restart the readers ({names(rs)}) before the writers"
            + (f" ({names(ws)})" if ws else "")
        )
    elif rs and fwd:
        steps.append(
            f"restart the writers{f' ({names(ws)})' if ws else ''} first, then the "
            f"readers ({names(rs)}) once {names(read)} hold no unprocessed entries"
        )
    elif rs:
        steps.append(
            f"stop the writers{f' ({names(ws)})' if ws else ''}; once {names(read)} "
            f"hold no unprocessed entries, restart the readers ({names(rs)}) and "
            "the writers together"
        )
    intake = [s for s in streams if (w := writer(new, s)) and not runs(new, w)]
    if intake:
        steps.append(
            f"clients writing {names(intake)} must send the new shape (`meshc "
            "submit` checks payloads against the file it is given)"
        )
    results = [s for s in streams if not readers(new, s) and not readers(old, s)]
    if results:
        steps.append(
            f"callers reading {names(results)} get both shapes until the old results are trimmed"
        )
    return "; ".join(steps)
