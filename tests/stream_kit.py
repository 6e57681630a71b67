"""Helpers shared by the tests that run workers on the test's own event loop (the
worker tests, the LLM tests): run them for a block, wait for a condition, write and
read stream entries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from meshc.runtime.worker import Worker
from redis.asyncio import Redis


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


@asynccontextmanager
async def in_thread(w: Worker) -> AsyncIterator[None]:
    """Run a worker on an event loop of its own thread (a process of its own, as far as
    stalling goes: a handler that blocks that loop stalls this worker alone)."""
    thread = threading.Thread(target=asyncio.run, args=(w.run(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        w.request_stop()
        while thread.is_alive():
            await asyncio.sleep(0.02)


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


def has(r: Redis, key: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A check for ``until``: the stream holds at least ``n`` entries."""
    return lambda: length_at_least(r, key, n)


async def length_at_least(r: Redis, key: str, n: int) -> bool:
    return int(await r.xlen(key)) >= n
