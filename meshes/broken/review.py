"""Handlers of the broken review mesh; each function is one agent's handler."""

from __future__ import annotations

import itertools
import random
from typing import Any, Protocol

from meshc.runtime.context import Joined

_serial = itertools.count(1)


class Task(Protocol):
    @property
    def doc_id(self) -> str: ...

    @property
    def text(self) -> str: ...


def words(task: Task, ctx: object) -> dict[str, Any]:
    """Fine: a pure function of the task."""
    count = len(task.text.split())
    return {"doc_id": task.doc_id, "lens": "words", "notes": [f"{count} words"]}


def stamp(task: Task, ctx: object) -> dict[str, Any]:
    """BUG: not idempotent. The note carries a process-wide serial number, so a retried
    or reclaimed task gets a different note, and the agent does not say it is random."""
    return {"doc_id": task.doc_id, "lens": "stamp", "notes": [f"review #{next(_serial)}"]}


def sample(task: Task, ctx: object) -> dict[str, Any]:
    """Random, but declared `deterministic: false`: meshc checks instead that its
    duplicate deliveries are absorbed by the exactly-once commit."""
    picked = random.choice(task.text.split() or [""])
    return {"doc_id": task.doc_id, "lens": "sample", "notes": [f"sampled {picked!r}"]}


def collect(joined: Joined, ctx: object) -> dict[str, Any]:
    """BUG: order-dependent. Notes are concatenated, and `first` named, in the order the
    lanes' partials arrived, so one chunk's digest depends on which lane was fastest."""
    notes: list[str] = []
    for part in joined.parts.values():
        notes.extend(getattr(part, "notes", []))
    first = next(iter(joined.parts), "")
    return {
        "doc_id": str(joined.key.get("doc_id", "")),
        "first": first,
        "notes": notes,
        "missing": list(joined.missing),
    }
