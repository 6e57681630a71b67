"""Failures: retries by reclaim, dead letters, slow replicas, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import redis
from meshc.runtime.context import Context
from meshc.runtime.process.agent import run_agent
from redis.asyncio import Redis
from stream_kit import add, entries, has, in_thread, running, until
from worker_kit import Result, Task, echo_mesh, payloads, worker

HERE = Path(__file__).parent


def test_failing_message_is_retried_then_dead_lettered_while_others_flow(valkey_url: str) -> None:
    attempts: list[int] = []

    def picky(task: Task, ctx: Context) -> Result:
        if task.n == 0:
            attempts.append(ctx.attempt)
            raise RuntimeError("poison")
        return Result(n=task.n, text="ok")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        poison = await add(r, "t.in", {"n": 0})
        w = worker(echo_mesh(max_deliveries=3), "echo", picky, redis_url=valkey_url)
        async with running(w):
            for i in range(1, 6):  # the lane keeps flowing while the poison waits
                await add(r, "t.in", {"n": i})
                await until(has(r, "t.out", i), timeout=2)
            await until(has(r, "m.dlq.echo", 1))
        assert attempts == [1, 2, 3]
        [(_, letter)] = await entries(r, "m.dlq.echo")
        assert letter[b"source_id"] == poison and letter[b"deliveries"] == b"3"
        assert letter[b"error"] == b"RuntimeError: poison" and letter[b"trace"] == poison
        assert (await r.xpending("t.in", "echo"))["pending"] == 0
        assert w.stats.failed == 3 and w.stats.dead_lettered == 1
        await r.aclose()

    asyncio.run(scenario())


def test_entry_past_max_deliveries_is_dead_lettered_without_running(valkey_url: str) -> None:
    """A message whose handler keeps crashing its worker never reaches a handler again."""
    ran: list[int] = []

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        eid = await add(r, "t.in", {"n": 1})
        await r.xgroup_create("t.in", "echo", id="0")
        await r.xreadgroup("echo", "ghost", {"t.in": ">"}, count=1)
        for _ in range(3):  # three crashed deliveries
            await r.xclaim("t.in", "echo", "ghost", 0, [eid])
        w = worker(
            echo_mesh(max_deliveries=3), "echo", lambda t, c: ran.append(1), redis_url=valkey_url
        )
        async with running(w):
            await until(has(r, "m.dlq.echo", 1))
        [(_, letter)] = await entries(r, "m.dlq.echo")
        assert b"more than max_deliveries=3" in letter[b"error"]
        assert letter[b"deliveries"] == b"4" and not ran
        await r.aclose()

    asyncio.run(scenario())


def test_stalled_worker_reclaimed_while_working_gives_one_set_of_outputs(valkey_url: str) -> None:
    """A worker whose whole process stalls (here: a handler that blocks the event loop,
    so not even its keepalive runs) loses its entry to another replica; both finish,
    and the XACK gate lets only the first commit write outputs."""
    started = threading.Event()

    async def slow_first(task: Task, ctx: Context) -> Result:
        if ctx.attempt == 1:
            started.set()
            time.sleep(0.8)  # blocks the loop: the process is stalled
        return Result(n=task.n, text=f"attempt {ctx.attempt}")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = echo_mesh(visibility_timeout=0.2)
        slow = worker(m, "echo", slow_first, redis_url=valkey_url, consumer="slow")
        fast = worker(m, "echo", slow_first, redis_url=valkey_url, consumer="fast")
        async with in_thread(slow):
            await add(r, "t.in", {"n": 1})
            await until(lambda: asyncio.sleep(0, started.is_set()))
            async with running(fast):
                await until(has(r, "t.out", 1))
            await asyncio.sleep(0.9)  # the slow one finishes and commits too
        assert payloads(await entries(r, "t.out")) == [{"n": 1, "text": "attempt 2"}]
        assert slow.stats.duplicates == 1 and fast.stats.committed == 1
        await r.aclose()

    asyncio.run(scenario())


def test_a_live_worker_keeps_its_long_call_from_other_replicas(valkey_url: str) -> None:
    """A call that runs past ``visibility_timeout`` in a live worker is not taken over:
    the worker refreshes its entries' idle time (XCLAIM JUSTID), so the handler runs
    once and the other replica never starts it."""
    runs: list[str] = []

    def long_call(task: Task, ctx: Context) -> Result:
        runs.append(ctx.entry_id)
        time.sleep(1.0)  # five visibility timeouts
        return Result(n=task.n, text=f"attempt {ctx.attempt}")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = echo_mesh(visibility_timeout=0.2)
        first = worker(m, "echo", long_call, redis_url=valkey_url, consumer="first")
        second = worker(m, "echo", long_call, redis_url=valkey_url, consumer="second")
        async with running(first):
            await add(r, "t.in", {"n": 1})
            await until(lambda: asyncio.sleep(0, bool(runs)))
            async with running(second):
                await until(has(r, "t.out", 1))
        assert payloads(await entries(r, "t.out")) == [{"n": 1, "text": "attempt 1"}]
        assert len(runs) == 1 and second.stats.read == 0
        await r.aclose()

    asyncio.run(scenario())


def test_async_handler_timeout_counts_as_a_failure(valkey_url: str) -> None:
    async def sleepy(task: Task, ctx: Context) -> Result:
        await asyncio.sleep(5)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "t.in", {"n": 1})
        m = echo_mesh(timeout=0.05, max_deliveries=1)
        async with running(worker(m, "echo", sleepy, redis_url=valkey_url)):
            await until(has(r, "m.dlq.echo", 1))
        [(_, letter)] = await entries(r, "m.dlq.echo")
        assert letter[b"error"].startswith(b"HandlerTimeout")
        await r.aclose()

    asyncio.run(scenario())


def test_sync_handler_timeout_counts_as_a_failure(valkey_url: str) -> None:
    def sleepy(task: Task, ctx: Context) -> Result:
        if task.n == 1:
            time.sleep(0.5)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "t.in", {"n": 1})
        await add(r, "t.in", {"n": 2})
        m = echo_mesh(timeout=0.05, max_deliveries=1)
        async with running(worker(m, "echo", sleepy, redis_url=valkey_url)):
            await until(has(r, "m.dlq.echo", 1))
            await until(has(r, "t.out", 1))
        [(_, letter)] = await entries(r, "m.dlq.echo")
        assert letter[b"error"].startswith(b"HandlerTimeout")
        await r.aclose()

    asyncio.run(scenario())


def test_trimmed_pending_entry_is_dropped_not_stuck(valkey_url: str) -> None:
    def boom(task: Task, ctx: Context) -> Result:
        raise RuntimeError("fail once")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "t.in", {"n": 1})
        w = worker(echo_mesh(max_deliveries=5), "echo", boom, redis_url=valkey_url)
        async with running(w):
            await until(lambda: asyncio.sleep(0, w.stats.failed >= 1))
            await r.xtrim("t.in", maxlen=0)
            await until(_no_pending(r))
        assert await r.xlen("m.dlq.echo") == 0
        await r.aclose()

    asyncio.run(scenario())


def _no_pending(r: Redis):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return int((await r.xpending("t.in", "echo"))["pending"]) == 0

    return check


def test_stop_event_finishes_in_flight_work(valkey_url: str) -> None:
    started = threading.Event()
    stop = threading.Event()

    def slow(task: Task, ctx: Context) -> Result:
        started.set()
        time.sleep(0.1)
        return Result(n=task.n, text="done")

    async def produce() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(5):
            await add(r, "t.in", {"n": i})
        await r.aclose()

    asyncio.run(produce())
    m = echo_mesh(batch=10)
    thread = threading.Thread(
        target=lambda: codes.append(run_agent(m, "echo", slow, redis_url=valkey_url, stop=stop))
    )
    codes: list[int] = []
    thread.start()
    assert started.wait(5)
    stop.set()
    thread.join(5)
    assert codes == [0]

    async def check() -> None:
        r = Redis.from_url(valkey_url)
        assert 1 <= await r.xlen("t.out") <= 5  # it started at least one
        assert (await r.xpending("t.in", "echo"))["pending"] == 0  # all it held, committed
        await r.aclose()

    asyncio.run(check())


SIGTERM_CHILD = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from worker_kit import Result, echo_mesh
from meshc.runtime.process.agent import run_agent

started = 0

async def slow(task, ctx):
    global started
    started += 1
    if started == int(sys.argv[4]):
        open(sys.argv[3], "w").close()
    await asyncio.sleep(1.0)
    return Result(n=task.n, text="done")

mesh = echo_mesh(concurrency=1000, batch=500, visibility_timeout=30.0)
sys.exit(run_agent(mesh, "echo", slow, redis_url=sys.argv[1]))
"""


def _child(url: str, marker: Path, started: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, url, str(HERE), str(marker), str(started)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigterm_with_a_thousand_calls_in_flight_loses_and_duplicates_nothing(
    valkey_url: str, tmp_path: Path
) -> None:
    """SIGTERM while 1,000 calls are in flight: the worker stops reading, lets every call
    finish, commits them and exits 0 with nothing pending; a second worker does the
    rest. Every entry has exactly one output (the first holds at most 1,500: its
    concurrency plus a read-ahead of one batch)."""
    n = 2500

    async def produce() -> None:
        r = Redis.from_url(valkey_url)
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd("t.in", {"data": orjson.dumps({"n": i})})
        await pipe.execute()
        await r.aclose()

    asyncio.run(produce())
    marker = tmp_path / "started"
    child = _child(valkey_url, marker, 1000)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    assert child.wait(60) == 0
    r = redis.Redis.from_url(valkey_url)
    first = [orjson.loads(f[b"data"])["n"] for _, f in r.xrange("t.out")]
    assert 1000 <= len(first) <= 1500 and len(set(first)) == len(first)
    assert r.xpending("t.in", "echo")["pending"] == 0
    rest = _child(valkey_url, tmp_path / "unused", 0)
    try:
        deadline = time.monotonic() + 60
        while r.xlen("t.out") < n:
            assert time.monotonic() < deadline and rest.poll() is None
            time.sleep(0.05)
    finally:
        rest.send_signal(signal.SIGTERM)
        assert rest.wait(60) == 0
    done = [orjson.loads(f[b"data"])["n"] for _, f in r.xrange("t.out")]
    assert sorted(done) == list(range(n))
    r.close()
