"""Helpers of the LLM tests: a one-agent mesh whose agent is ``handler: llm``, and a
way to run its workers as tasks of the test's own event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from meshc.runtime.builtins import BUILTINS
from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec
from meshc.runtime.worker import Worker
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

# The fake server echoes the JSON object of the last user message: this prompt makes
# the "model" answer {"n": <n>, "text": <text upper-cased>}.
PROMPT = 'Answer exactly {"n": {{ n }}, "text": {{ text | upper | tojson }}}\n'
KEY_ENV = "MESHC_TEST_LLM_KEY"
REVIEW_LLM = Path(__file__).resolve().parents[2] / "meshes" / "doc_review_llm.yaml"
SECRET = "sk-test-0123456789-SECRET-abcdef"


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    text: str


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    text: str


def llm_mesh(
    url: str, *, prompt: str = PROMPT, policy: dict[str, Any] | None = None, **model: Any
) -> MeshSpec:
    """``q.in`` (Task) -> ask (llm) -> ``q.out`` (Answer), with fast test defaults."""
    settings = {
        "name": "fake-model",
        "base_url": url,
        "request_timeout": "5s",
        "retries": 2,
        **model,
    }
    agent = AgentSpec(
        "ask",
        "specialist",
        ("q.in",),
        ("q.out",),
        "llm",
        policy=Policy(
            **{"batch": 50, "visibility_timeout": 0.3, "max_deliveries": 3, **(policy or {})}
        ),
        settings={"model": settings, "prompt": prompt},
    )
    streams = {"q.in": StreamSpec("q.in", Task), "q.out": StreamSpec("q.out", Answer)}
    return MeshSpec("m", 1, streams, {"ask": agent})


def worker(mesh: MeshSpec, url: str, **kw: Any) -> Worker:
    kw.setdefault("block_ms", 20)
    return Worker(mesh, "ask", BUILTINS["llm"], redis_url=url, **kw)


@asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    """Run workers for the body of the block, then stop them and wait for them."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for w in workers:
            w.request_stop()
        await asyncio.gather(*tasks)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def has(r: Redis, key: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return int(await r.xlen(key)) >= n

    return check


async def add(r: Redis, key: str, payload: dict[str, Any]) -> bytes:
    eid: Any = await r.xadd(key, {"data": orjson.dumps(payload)})
    return bytes(eid)


async def entries(r: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    rows: Any = await r.xrange(key)
    return list(rows)


def data(fields: dict[bytes, bytes]) -> Any:
    return orjson.loads(fields[b"data"])
