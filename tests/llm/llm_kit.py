"""Helpers of the LLM tests: a one-agent mesh whose agent is ``handler: llm``, and a
way to run its workers as tasks of the test's own event loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from meshc.runtime.builtins import BUILTINS
from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec
from meshc.runtime.worker import Worker
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until

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


def data(fields: dict[bytes, bytes]) -> Any:
    return orjson.loads(fields[b"data"])


async def only_dead_letter(mesh: MeshSpec, url: str) -> dict[bytes, bytes]:
    """Submit one task to ``mesh``'s agent and run it until the task is dead-lettered;
    the dead letter's fields."""
    r = Redis.from_url(url)
    try:
        await add(r, "q.in", {"n": 1, "text": "x"})
        async with running(worker(mesh, url)):
            await until(has(r, "m.dlq.ask", 1))
        [(_, letter)] = await entries(r, "m.dlq.ask")
        return letter
    finally:
        await r.aclose()
