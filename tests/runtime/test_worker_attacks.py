"""Attacks on a running worker through what it reads and the server it talks to.

An outside producer may write any header at all; a header the worker cannot use must
dead-letter that entry alone, while the entries around it are served as usual. A
client of the server may run a long script: every other client then gets ``BUSY``
until it ends, and a worker must wait that out rather than die.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import redis
from meshc.runtime.transport import waitable
from meshc.runtime.wire import MAX_TRACE
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until
from worker_kit import Result, Task, echo_mesh, payloads, worker


def upper(task: Task, ctx: object) -> Result:
    return Result(n=task.n, text=task.text.upper())


def test_malformed_headers_dead_letter_only_their_own_entries(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        good = await add(r, "t.in", {"n": 0, "text": "a"})
        long_trace = await add(r, "t.in", {"n": 1}, trace="T" * (MAX_TRACE + 1))
        not_utf8 = await r.xadd("t.in", {"data": b'{"n": 2}', "trace": b"\xff\xfe"})
        forged = await r.xadd(
            "t.in",
            {"data": b'{"n": 3}', "attempt": b"x", "parent": b"\xff", "agent": b"A" * 10_000},
        )
        after = await add(r, "t.in", {"n": 4, "text": "b"})
        w = worker(echo_mesh(), "echo", upper, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 3))
            await until(has(r, "m.dlq.echo", 2))
        out = await entries(r, "t.out")
        assert sorted(p["n"] for p in payloads(out)) == [0, 3, 4]
        by_parent = {f[b"parent"]: f for _, f in out}
        assert set(by_parent) == {good, forged, after}
        # What the worker writes is its own header, whatever the input claimed.
        assert by_parent[forged][b"agent"] == b"echo" and by_parent[forged][b"attempt"] == b"1"
        letters = {f[b"source_id"]: f[b"error"].decode() for _, f in await entries(r, "m.dlq.echo")}
        assert set(letters) == {long_trace, not_utf8}
        assert all(e.startswith("malformed header: `trace`") for e in letters.values())
        assert (await r.xpending("t.in", "echo"))["pending"] == 0
        assert w.exit_code == 0 and w.stats.dead_lettered == 2
        await r.aclose()

    asyncio.run(scenario())


SPIN = """
local start = tonumber(redis.call('TIME')[1])
while tonumber(redis.call('TIME')[1]) - start < tonumber(ARGV[1]) do end
return 1
"""


def test_a_server_busy_with_a_long_script_is_waited_out(
    own_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(own_server)
    admin.config_set("busy-reply-threshold", 100)  # BUSY after 0.1 s of a script, not 5 s

    async def scenario() -> None:
        r = Redis.from_url(own_server)
        for i in range(10):
            await add(r, "t.in", {"n": i, "text": "x"})
        w = worker(echo_mesh(), "echo", upper, redis_url=own_server)
        async with running(w):
            await until(has(r, "t.out", 10))
            for i in range(10, 20):
                await add(r, "t.in", {"n": i, "text": "y"})
            spinner = threading.Thread(target=admin.eval, args=(SPIN, 0, 2))
            spinner.start()
            while spinner.is_alive():
                await asyncio.sleep(0.05)
            await until(has(r, "t.out", 20), timeout=30)
        out = payloads(await entries(r, "t.out"))
        assert sorted(p["n"] for p in out) == list(range(20))  # each once
        assert w.exit_code == 0
        await r.aclose()

    try:
        with caplog.at_level(logging.DEBUG, logger="meshc.worker.echo"):
            asyncio.run(scenario())
    finally:
        admin.close()
    assert any("BUSY" in r.getMessage() for r in caplog.records), "the worker never saw BUSY"


def test_busy_is_recognised_inside_a_pipeline(own_server: str) -> None:
    """redis-py rewrites an error inside a pipeline (``Command # 1 (…) of pipeline
    caused error: ('BUSY …',)``); the retry scan's pipeline once died of that form."""
    admin = redis.Redis.from_url(own_server)
    admin.config_set("busy-reply-threshold", 100)
    spinner = threading.Thread(target=admin.eval, args=(SPIN, 0, 2))
    spinner.start()

    async def pipelined() -> BaseException:
        r = Redis.from_url(own_server)
        try:
            while True:
                pipe = r.pipeline(transaction=False)
                pipe.xlen("t.in")
                try:
                    await pipe.execute()
                except redis.ResponseError as err:
                    return err
                await asyncio.sleep(0.02)  # not busy yet
        finally:
            await r.aclose()

    try:
        error = asyncio.run(pipelined())
    finally:
        spinner.join()
        admin.close()
    assert "of pipeline caused error" in str(error) and "BUSY" in str(error)
    assert waitable(error)
    assert not waitable(redis.ResponseError("Command # 1 (XLEN t) of pipeline caused error: ERR x"))
