"""Helpers of the ``test_worker_*`` modules: small models, hand-built meshes, and a
way to run workers as tasks of the test's own event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from meshc.runtime.spec import AgentSpec, JoinSpec, MeshSpec, Policy, StreamSpec
from meshc.runtime.worker import Worker
from pydantic import BaseModel
from redis.asyncio import Redis


class Task(BaseModel):
    n: int
    text: str = ""


class Result(BaseModel):
    n: int
    text: str


class Note(BaseModel):
    n: int
    note: str


class Part(BaseModel):
    doc: str
    lane: str
    score: int


class Summary(BaseModel):
    doc: str
    parts: dict[str, Any]
    missing: list[str]


def policy(**kw: Any) -> Policy:
    """Fast defaults for tests: short visibility timeout."""
    base = Policy(batch=50, visibility_timeout=0.2, max_deliveries=3)
    return replace(base, **kw)


def mesh(
    streams: dict[str, type[BaseModel]],
    agents: list[AgentSpec],
    *,
    partitions: int = 1,
    name: str = "m",
) -> MeshSpec:
    return MeshSpec(
        name,
        1,
        {s: StreamSpec(s, model) for s, model in streams.items()},
        {a.name: a for a in agents},
        partitions=partitions,
    )


def agent(name: str, reads: tuple[str, ...], writes: tuple[str, ...], **kw: Any) -> AgentSpec:
    role = kw.pop("role", "specialist")
    join: JoinSpec | None = kw.pop("join", None)
    handler = kw.pop("handler", "tests:handler")
    return AgentSpec(name, role, reads, writes, handler, policy=policy(**kw), join=join)


def echo_mesh(partitions: int = 1, **kw: Any) -> MeshSpec:
    """``t.in`` (Task) -> echo -> ``t.out`` (Result)."""
    return mesh(
        {"t.in": Task, "t.out": Result},
        [agent("echo", ("t.in",), ("t.out",), **kw)],
        partitions=partitions,
    )


def worker(m: MeshSpec, name: str, handler: Callable[..., Any] | None, **kw: Any) -> Worker:
    kw.setdefault("block_ms", 20)
    return Worker(m, name, handler, **kw)


async def key_names(r: Redis, pattern: str) -> list[str]:
    names: Any = await r.keys(pattern)
    return sorted(k.decode() for k in names)


def payloads(rows: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Any]:
    return [orjson.loads(fields[b"data"]) for _, fields in rows]
