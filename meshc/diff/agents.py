"""Findings about agents (added, removed, renamed; handler, policy, model, prompt,
reads, writes) and aggregators' joins."""

from __future__ import annotations

from typing import Any

from meshc.core import CoreAgent, CoreMesh
from meshc.diff.findings import Condition, Finding, names
from meshc.diff.query import handler, runs, writer


def _destroy(agent: str, streams: tuple[str, ...]) -> str:
    commands = ", ".join(f"`XGROUP DESTROY {s} {agent}`" for s in streams)
    return f"then destroy its group ({commands}), or trimming waits on it for ever"


_CACHE = "replies cached for entries already answered are reused if those entries come again"


def agent_findings(old: CoreMesh, new: CoreMesh) -> list[Finding]:
    out: list[Finding] = []
    added = sorted(set(new.agents) - set(old.agents))
    removed = sorted(set(old.agents) - set(new.agents))
    renamed = _renames(old, new, added, removed)
    for a, b in renamed.items():
        out.append(_renamed(old, new, a, b))
    for name in added:
        if name not in renamed.values():
            out.append(_added(old, new.agents[name], runs(new, name)))
    for name in removed:
        if name not in renamed:
            out.append(_removed(old, old.agents[name]))
    for name in sorted(set(old.agents) & set(new.agents)):
        out.extend(_changed(old, new, old.agents[name], new.agents[name]))
    return out


def _renames(old: CoreMesh, new: CoreMesh, added: list[str], removed: list[str]) -> dict[str, str]:
    """Removed → added agents with the same role, reads and writes: one agent renamed."""
    out: dict[str, str] = {}
    for a in removed:
        ours = old.agents[a]
        for b in added:
            theirs = new.agents[b]
            same = (ours.role, set(ours.read_names), set(ours.write_names)) == (
                theirs.role,
                set(theirs.read_names),
                set(theirs.write_names),
            )
            if same and ours.reads and b not in out.values():
                out[a] = b
                break
    return out


def _renamed(old: CoreMesh, new: CoreMesh, a: str, b: str) -> Finding:
    streams = tuple(s for s in new.agents[b].read_names if s in old.streams)
    return Finding(
        "agent-renamed",
        "agent",
        b,
        "changed",
        f"agent `{a}` renamed to `{b}`",
        "breaks",
        reason=f"`{b}` reads through a new group, which starts at the first entry: it "
        f"would handle again every entry `{a}` already handled, and write its outputs twice",
        advice=f"create `{b}`'s groups where `{a}`'s stand (`XGROUP CREATE <stream> {b} "
        f"<last-delivered id of {a}>`) before starting it, then destroy `{a}`'s",
        clear="restart",
        conditions=(Condition("entries", streams),),
        acts=(("stop", a), ("start", b)),
        streams=streams,
        family=new.agents[b].family,
    )


def _added(old: CoreMesh, agent: CoreAgent, run: bool) -> Finding:
    if not run:
        return Finding(
            "agent-added",
            "agent",
            agent.name,
            "added",
            f"{agent.role} `{agent.name}` added",
            "safe",
            reason="a producer is the name clients write under: nothing runs",
        )
    kept = [s for s in agent.read_names if s in old.streams]
    advice = (
        f"its group on {names(kept)} starts at the first entry: it will handle every "
        "entry still there"
        if kept
        else ""
    )
    return Finding(
        "agent-added",
        "agent",
        agent.name,
        "added",
        f"{agent.role} `{agent.name}` added",
        "restart",
        advice=advice,
        acts=(("start", agent.name),),
        streams=tuple(kept),
        family=agent.family,
    )


def _removed(old: CoreMesh, agent: CoreAgent) -> Finding:
    message = f"{agent.role} `{agent.name}` removed"
    if not runs(old, agent.name):
        return Finding(
            "agent-removed",
            "agent",
            agent.name,
            "removed",
            message,
            "safe",
            reason="a producer: nothing runs",
            family=agent.family,
        )
    reads = agent.read_names
    return Finding(
        "agent-removed",
        "agent",
        agent.name,
        "removed",
        message,
        "breaks",
        reason="entries its group has not finished would never be handled",
        advice="stop it once its groups have no lag or pending entries; "
        + _destroy(agent.name, reads),
        clear="restart",
        conditions=(Condition("group", reads, group=agent.name),),
        acts=(("stop", agent.name),),
        streams=reads,
        family=agent.family,
    )


class _Changes:
    """The findings about one agent present in both versions."""

    def __init__(self, old: CoreMesh, new: CoreMesh, a: CoreAgent, b: CoreAgent) -> None:
        self.old, self.a, self.b = old, a, b
        self.restart = (("restart", b.name),) if runs(new, b.name) else ()
        self.out: list[Finding] = []

    def note(self, rule: str, message: str, level: str = "restart", **extra: Any) -> None:
        if level == "restart" and not self.restart:
            level = "safe"  # a producer: nothing runs
        self.out.append(
            Finding(
                rule,
                "agent",
                self.b.name,
                "changed",
                f"agent `{self.b.name}`: {message}",
                level,
                acts=self.restart,
                family=self.b.family,
                **extra,
            )
        )

    def settings(self) -> None:
        a, b = self.a, self.b
        if a.role != b.role:
            self.note("agent-role", f"role `{a.role}` → `{b.role}`")
        if handler(a) != handler(b):
            self.note("agent-handler", f"handler `{handler(a)}` → `{handler(b)}`")
        if a.description != b.description:
            self.note("agent-description", "description changed", "safe")
        if a.deterministic != b.deterministic:
            self.note(
                "agent-deterministic",
                f"deterministic {a.deterministic} → {b.deterministic}",
                "safe",
                reason="only `meshc test` reads it",
            )
        for key in sorted(set(a.policy) | set(b.policy)):
            if a.policy.get(key) != b.policy.get(key):
                self.policy(key, a.policy.get(key), b.policy.get(key))
        if a.model != b.model:
            self.note("agent-model", f"model {_model_delta(a, b)}", advice=_CACHE)
        if a.prompt != b.prompt:
            self.note("agent-prompt", "prompt changed", advice=_CACHE)
        if set(a.write_names) != set(b.write_names):
            self.note(
                "writes-changed",
                f"writes {_delta(a.write_names, b.write_names)}",
                advice="its handler must write the new set of streams",
            )

    def policy(self, key: str, before: Any, after: Any) -> None:
        unit = "s" if key in ("timeout", "visibility_timeout") else ""
        text = f"policy `{key}` {_value(before, unit)} → {_value(after, unit)}"
        if key == "max_payload_bytes" and after < before:
            self.note(
                "payload-limit-lowered",
                text,
                "breaks",
                clear="restart",
                reason="entries over the new bound already in its inputs go to its dead letters",
                conditions=(Condition("unprocessed", self.a.read_names),),
            )
        elif key == "replicas":
            self.note("policy-changed", text, advice="`meshc run` starts the replicas: restart it")
        else:
            self.note("policy-changed", text, advice="workers read their policy when they start")

    def reads(self) -> None:
        a, b = self.a, self.b
        if a.join is None and b.join is not None:
            self.note("join-added", "join added")
        elif a.join is not None and b.join is None:
            self.note(
                "join-removed", "join removed", "breaks", clear="restart",
                reason="its open joins would never be emitted",
                conditions=(Condition("joins", agents=(a.name,)),),
            )  # fmt: skip
        for s in (s for s in b.read_names if s not in a.read_names):
            self.note(
                "reads-added",
                f"now reads `{s}`",
                streams=(s,),
                advice=f"its new group on `{s}` starts at the first entry: it will "
                "handle every entry still there"
                if s in self.old.streams
                else "",
            )
        for s in (s for s in a.read_names if s not in b.read_names):
            self.note(
                "reads-removed",
                f"no longer reads `{s}`",
                "breaks",
                clear="restart",
                reason=f"entries its group on `{s}` has not finished would never be handled",
                advice=_destroy(a.name, (s,)),
                conditions=(Condition("group", (s,), group=a.name),),
                streams=(s,),
            )


def _changed(old: CoreMesh, new: CoreMesh, a: CoreAgent, b: CoreAgent) -> list[Finding]:
    changes = _Changes(old, new, a, b)
    changes.settings()
    if a.join is not None and b.join is not None:
        changes.out.extend(_join(old, new, a, b))
    else:
        changes.reads()
    return changes.out


def _join(old: CoreMesh, new: CoreMesh, a: CoreAgent, b: CoreAgent) -> list[Finding]:
    assert a.join is not None and b.join is not None
    out = []
    inputs = tuple(sorted((set(a.read_names) | set(b.read_names)) & set(old.streams)))
    restart = (("restart", b.name),)

    def join(
        rule: str,
        message: str,
        conditions: tuple[Condition, ...],
        reason: str = "",
        advice: str = "",
    ) -> None:
        out.append(
            Finding(
                rule,
                "join",
                b.name,
                "changed",
                f"join of `{b.name}`: {message}",
                "breaks" if conditions else "restart",
                clear="restart" if conditions else None,
                conditions=conditions,
                acts=restart,
                streams=inputs,
                reason=reason,
                advice=advice,
            )
        )

    opened = Condition("joins", agents=(a.name,))
    if a.join.on != b.join.on:
        join(
            "join-key-changed",
            f"on {a.join.on} → {b.join.on}",
            (opened, Condition("unprocessed", inputs)),
            reason="partials stored under the old key never meet the ones keyed anew: "
            "both joins time out with lanes missing",
        )
    if set(a.read_names) != set(b.read_names):
        join(
            "join-lanes-changed",
            f"lanes {_delta(_lanes(old, a), _lanes(new, b))}",
            (),
            reason="each task carries the lanes its fan-out sent it to (`task.lanes`): "
            "tasks fanned out before the change join those, tasks after it the new set",
            advice="restart the aggregator before its coordinator when lanes are added; "
            "when lanes are removed, restart it once their streams are drained "
            "(`meshc rollout` and a reload of `meshc run` keep this order)",
        )
    if a.join.timeout != b.join.timeout:
        join(
            "join-timeout",
            f"timeout {a.join.timeout:g}s → {b.join.timeout:g}s",
            (),
            advice="open joins keep the deadline they were given",
        )
    return out


def _writers(mesh: CoreMesh, streams: tuple[str, ...]) -> set[str]:
    return {w for s in streams if (w := writer(mesh, s)) is not None}


def _lanes(mesh: CoreMesh, agent: CoreAgent) -> tuple[str, ...]:
    return tuple(mesh.lane_of(s) for s in agent.read_names)


def _delta(before: tuple[str, ...], after: tuple[str, ...]) -> str:
    plus = [f"+{x}" for x in after if x not in before]
    minus = [f"-{x}" for x in before if x not in after]
    return " ".join(plus + minus) or "reordered"


def _model_delta(a: CoreAgent, b: CoreAgent) -> str:
    """``added``, ``removed``, or the settings that differ: ``temperature 0 → 0.2``."""
    if a.model is None or b.model is None:
        return "added" if a.model is None else "removed"
    before, after = a.model.model_dump(), b.model.model_dump()
    return ", ".join(
        f"{k} {_value(before[k])} → {_value(after[k])}" for k in before if before[k] != after[k]
    )


def _value(value: object, unit: str = "") -> str:
    if value is None:
        return "none"
    return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"
