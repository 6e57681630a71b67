"""Helpers of the ``test_worker_*`` modules: small models, hand-built meshes, and a
way to run workers as tasks of the test's own event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
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


@asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run workers for the body of the block, then stop them and wait for them."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        for w in workers:
            w.request_stop()
        await asyncio.gather(*tasks)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def add(r: Redis, key: str, payload: Any, **header: str) -> bytes:
    """XADD a payload (dict, or raw bytes) with optional header fields."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return await add_fields(r, key, {"data": data, **header})


async def add_fields(r: Redis, key: str, fields: dict[Any, Any]) -> bytes:
    eid: Any = await r.xadd(key, fields)
    return bytes(eid)


async def entries(r: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    rows: Any = await r.xrange(key)
    return list(rows)


async def key_names(r: Redis, pattern: str) -> list[str]:
    names: Any = await r.keys(pattern)
    return sorted(k.decode() for k in names)


def has(r: Redis, key: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A check for ``until``: the stream holds at least ``n`` entries."""
    return lambda: length_at_least(r, key, n)


async def length_at_least(r: Redis, key: str, n: int) -> bool:
    return int(await r.xlen(key)) >= n


def payloads(rows: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Any]:
    return [orjson.loads(fields[b"data"]) for _, fields in rows]
