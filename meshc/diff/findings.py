"""What ``meshc diff`` reports: findings, their level, and what a level depends on.

A finding is one change between two versions of a mesh (an agent's handler, a field
of a type, a join key...) classified for a mesh that is running the old version:

``safe``
    nothing that runs needs to change: the change takes effect where the mesh file
    is read, at the next call of ``meshc submit``, ``trim``, ``status`` or ``render``,
    and in workers whenever they next start.
``restart``
    the named agents must be restarted (or started, or stopped) for the change to take
    effect; until then they keep the old behaviour, and nothing in flight is harmed,
    provided the restarts happen in the order the finding gives.
``breaks``
    work already in the streams or in a join would be refused, dead-lettered, lost
    or done twice.

Many changes break only if the server still holds something: entries written under
the old type, a group's pending entries, open joins. Such a finding carries
:class:`Condition` s: without a server it is reported at its worst (``breaks if
`doc.review.tasks` still holds unprocessed entries``); with one, the conditions are
read (``meshc.ops.diff_facts``) and the finding is ``breaks`` if any holds, else its
``clear`` level.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

LEVELS = ("safe", "restart", "breaks")
SCHEMA = 1


def worst(levels: Any) -> str:
    """The most severe of ``levels`` (``safe`` for none)."""
    return max(levels, key=LEVELS.index, default="safe")


def names(items: Any) -> str:
    """`a`, `b` and `c`: names for a sentence."""
    quoted = [f"`{i}`" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


@dataclass(frozen=True)
class Condition:
    """Something on the server that makes a finding break in-flight work.

    ``unprocessed``: a stream holds entries some reader has not finished (lag or
    pending, or any entry when a reader has no group yet); ``entries``: a stream holds
    any entry at all; ``group``: the group of agent ``group`` on the streams has lag or
    pending entries; ``joins``: aggregators hold open joins.
    """

    kind: str
    streams: tuple[str, ...] = ()
    group: str = ""
    agents: tuple[str, ...] = ()

    def text(self) -> str:
        if self.kind == "unprocessed":
            verb = "holds" if len(self.streams) == 1 else "hold"
            return f"{names(self.streams)} still {verb} unprocessed entries"
        if self.kind == "entries":
            verb = "holds" if len(self.streams) == 1 else "hold"
            return f"{names(self.streams)} still {verb} entries"
        if self.kind == "group":
            return f"group `{self.group}` on {names(self.streams)} has lag or pending entries"
        verb = "has" if len(self.agents) == 1 else "have"
        return f"{names(self.agents)} {verb} open joins"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "streams": list(self.streams),
            "group": self.group or None,
            "agents": list(self.agents),
        }


@dataclass(frozen=True)
class Finding:
    """One change and its classification.

    ``level`` is the worst case; with ``conditions`` it applies only if one of them
    holds on the server, and ``clear`` otherwise. ``acts`` are (action, agent) pairs,
    the action being restart, start or stop; ``advice`` says how (in which order, what
    to clean up).
    After a server was read, ``held`` says whether a condition held and ``evidence``
    what was found.
    """

    rule: str
    kind: str
    subject: str
    change: str
    message: str
    level: str
    reason: str = ""
    advice: str = ""
    clear: str | None = None
    conditions: tuple[Condition, ...] = ()
    acts: tuple[tuple[str, str], ...] = ()
    streams: tuple[str, ...] = ()
    family: str | None = None
    held: bool | None = None
    evidence: tuple[str, ...] = ()

    @property
    def effective(self) -> str:
        """The level to act on: the worst case until a server said the conditions are clear."""
        if self.conditions and self.held is False and self.clear is not None:
            return self.clear
        return self.level

    @property
    def depends(self) -> str:
        """``if …, else restart`` for a finding no server has settled yet, else ''."""
        if self.kind == "family" and self.clear is not None:
            return (
                f"if findings about its members that depend on the server break, else {self.clear}"
            )
        if not self.conditions or self.held is not None:
            return ""
        return f"if {' or '.join(c.text() for c in self.conditions)}, else {self.clear}"

    def settled(self, held: bool, evidence: list[str]) -> Finding:
        return replace(self, held=held, evidence=tuple(evidence))

    def sort_key(self) -> tuple[int, str, str, str]:
        return (KINDS.index(self.kind), self.subject, self.rule, self.message)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "subject": self.subject,
            "change": self.change,
            "message": self.message,
            "level": self.effective,
            "worst": self.level,
            "if_clear": self.clear,
            "conditions": [c.to_json() for c in self.conditions],
            "settled": not self.depends,
            "evidence": list(self.evidence),
            "reason": self.reason,
            "advice": self.advice,
            "actions": [{"action": a, "agent": agent} for a, agent in self.acts],
            "streams": list(self.streams),
            "family": self.family,
        }


KINDS = ("mesh", "family", "stream", "type", "agent", "join")
SECTIONS = dict(
    zip(KINDS, ("Mesh", "Lane families", "Streams", "Types", "Agents", "Joins"), strict=True)
)


@dataclass(frozen=True)
class Side:
    """One of the two files: its path and the mesh's name and version."""

    file: str
    mesh: str
    version: int


@dataclass
class Report:
    """Every finding between ``old`` and ``new``; ``server`` when one was read."""

    old: Side
    new: Side
    findings: list[Finding] = field(default_factory=list)
    server: str | None = None

    @property
    def level(self) -> str:
        return worst(f.effective for f in self.findings)

    @property
    def exit_code(self) -> int:
        """1 when something breaks in-flight work (or may, and no server said it does not)."""
        return 1 if self.level == "breaks" else 0

    def actions(self) -> dict[str, list[str]]:
        """Agents to restart, start and stop, over every finding that is not safe."""
        out: dict[str, set[str]] = {"restart": set(), "start": set(), "stop": set()}
        for f in self.findings:
            if f.effective != "safe":
                for action, agent in f.acts:
                    out[action].add(agent)
        out["restart"] -= out["start"] | out["stop"]
        return {k: sorted(v) for k, v in out.items()}

    def counts(self) -> dict[str, int]:
        return {lv: sum(1 for f in self.findings if f.effective == lv) for lv in LEVELS}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "old": self.old.__dict__,
            "new": self.new.__dict__,
            "server": self.server,
            "level": self.level,
            "counts": self.counts(),
            "actions": self.actions(),
            "findings": [f.to_json() for f in self.findings],
        }
