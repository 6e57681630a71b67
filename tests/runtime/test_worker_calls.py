"""The call is the unit of work: a window of calls in flight, each committed as it
finishes, and deadlines that no hung handler can outlast (meshc/runtime/calls.py)."""

from __future__ import annotations

import asyncio
import threading

from meshc.ops import admin
from meshc.runtime.context import Context
from meshc.runtime.replica import EXIT_STUCK
from meshc.runtime.scripts import RETRY_CONSUMER
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until
from worker_kit import Result, Task, echo_mesh, payloads, worker


def test_each_call_is_committed_as_it_finishes_not_with_its_batch(valkey_url: str) -> None:
    """One slow call among fast ones: the fast ones' outputs are written while the slow
    one still runs (a batch-at-a-time worker wrote nothing until it returned)."""
    release = threading.Event()

    async def handler(task: Task, ctx: Context) -> Result:
        if task.n == 0:
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(10):
            await add(r, "t.in", {"n": i})
        async with running(worker(echo_mesh(concurrency=4), "echo", handler, redis_url=valkey_url)):
            await until(has(r, "t.out", 9))
            assert not release.is_set()  # n=0 is still running
            release.set()
            await until(has(r, "t.out", 10))
        assert sorted(p["n"] for p in payloads(await entries(r, "t.out"))) == list(range(10))
        await r.aclose()

    asyncio.run(scenario())


def test_the_window_holds_concurrency_plus_a_read_ahead_and_no_more(valkey_url: str) -> None:
    """Slow calls: the worker never holds (reads and has not settled) more than its
    concurrency plus a read-ahead of at most one batch, however long the stream is."""
    peak = [0]

    async def handler(task: Task, ctx: Context) -> Result:
        await asyncio.sleep(0.05)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        pipe = r.pipeline(transaction=False)
        for i in range(300):
            pipe.xadd("t.in", {"data": f'{{"n": {i}}}'})
        pipe.xgroup_create("t.in", "echo", id="0")
        await pipe.execute()
        w = worker(echo_mesh(concurrency=8, batch=20), "echo", handler, redis_url=valkey_url)
        async with running(w):
            while int(await r.xlen("t.out")) < 300:
                pending = (await r.xpending("t.in", "echo"))["pending"]
                peak[0] = max(peak[0], pending, w.window.held)
                await asyncio.sleep(0.005)
        assert 8 <= peak[0] <= 8 + 20
        await r.aclose()

    asyncio.run(scenario())


def test_a_hung_plain_handler_without_a_deadline_blocks_no_other_message(
    valkey_url: str,
) -> None:
    """Concurrency 4 and no timeout: a call that hangs holds one lane; the other
    messages of the lane flow through the other three."""
    hang = threading.Event()

    def handler(task: Task, ctx: Context) -> Result:
        if task.n == 0:
            hang.wait(30)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(20):
            await add(r, "t.in", {"n": i})
        m = echo_mesh(concurrency=4, timeout=None)
        async with running(worker(m, "echo", handler, redis_url=valkey_url)):
            await until(has(r, "t.out", 19))
            assert not hang.is_set()
            hang.set()
            await until(has(r, "t.out", 20))
        await r.aclose()

    asyncio.run(scenario())


def test_a_hung_plain_handler_is_abandoned_at_its_deadline(valkey_url: str) -> None:
    """Concurrency 1 and a timeout: the hung call is finished as a HandlerTimeout at its
    deadline, a fresh lane thread takes over, and the messages behind it flow while
    the stuck thread still sleeps."""
    hang = threading.Event()

    def handler(task: Task, ctx: Context) -> Result:
        if task.n == 0:
            hang.wait(30)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(6):
            await add(r, "t.in", {"n": i})
        m = echo_mesh(concurrency=1, timeout=0.3, max_deliveries=1)
        w = worker(m, "echo", handler, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 5))
            await until(has(r, "m.dlq.echo", 1))
            assert not hang.is_set() and w.runner.stuck == 1
            hang.set()
            await until(lambda: asyncio.sleep(0, w.runner.stuck == 0))
        [(_, letter)] = await entries(r, "m.dlq.echo")
        assert letter[b"error"].startswith(b"HandlerTimeout")
        assert sorted(p["n"] for p in payloads(await entries(r, "t.out"))) == [1, 2, 3, 4, 5]
        await r.aclose()

    asyncio.run(scenario())


def test_a_hung_async_handler_is_cancelled_at_its_deadline(valkey_url: str) -> None:
    async def handler(task: Task, ctx: Context) -> Result:
        if task.n == 0:
            await asyncio.sleep(30)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(4):
            await add(r, "t.in", {"n": i})
        m = echo_mesh(concurrency=1, timeout=0.2, max_deliveries=1)
        w = worker(m, "echo", handler, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 3))
            await until(has(r, "m.dlq.echo", 1))
        assert w.runner.stuck == 0  # cancelled, not abandoned
        await r.aclose()

    asyncio.run(scenario())


def test_a_lane_goes_on_after_a_cancelled_call_and_its_handlers_timeouts_still_work(
    valkey_url: str,
) -> None:
    """One lane (concurrency 1): after its call is cancelled at the deadline the same
    lane takes the next calls; the cancellation was taken back (``cancelling()`` is 0
    again, as code that checks for outside cancellation, e.g. task groups, expects) and
    a handler's own ``asyncio.timeout`` there still raises ``TimeoutError``."""
    cancelling: list[int] = []

    async def handler(task: Task, ctx: Context) -> Result:
        if task.n == 0:
            await asyncio.sleep(30)  # past the agent's timeout: cancelled
        current = asyncio.current_task()
        assert current is not None
        cancelling.append(current.cancelling())
        if task.n == 1:
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(30)
            except TimeoutError:
                return Result(n=1, text="own timeout")
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(3):
            await add(r, "t.in", {"n": i})
        m = echo_mesh(concurrency=1, timeout=0.3, max_deliveries=1)
        w = worker(m, "echo", handler, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 2))
            await until(has(r, "m.dlq.echo", 1))
        got = {p["n"]: p["text"] for p in payloads(await entries(r, "t.out"))}
        assert got == {1: "own timeout", 2: ""}
        assert cancelling == [0, 0]
        assert w.runner.stuck == 0
        await r.aclose()

    asyncio.run(scenario())


def test_stuck_threads_reaching_the_bound_make_the_worker_drain_and_exit(
    valkey_url: str,
) -> None:
    """Four calls that never return (bound: max(4, concurrency)): the worker commits
    what it holds and exits with EXIT_STUCK, for its supervisor to start a fresh one."""
    never = threading.Event()

    def handler(task: Task, ctx: Context) -> Result:
        if task.n < 4:
            never.wait(60)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(6):
            await add(r, "t.in", {"n": i})
        m = echo_mesh(concurrency=1, timeout=0.1, max_deliveries=5)
        w = worker(m, "echo", handler, redis_url=valkey_url)
        await asyncio.wait_for(w.run(), 60)  # returns by itself
        assert w.exit_code == EXIT_STUCK and w.stats.stuck_exits == 1
        assert (await r.xpending("t.in", "echo"))["pending"] == 4  # the four, for a retry
        health = await r.hgetall("m:echo:health")
        assert int(health[b"stuck_exits"]) == 1 and b"stuck" in health[b"last_stuck"]
        never.set()
        await r.aclose()

    asyncio.run(scenario())
    report = admin.status(echo_mesh(), valkey_url)
    assert report["agents"]["echo"]["stuck_exits"] == 1
    assert "echo: 1 times; last:" in admin.format_status(report)


def test_a_failed_call_waits_with_the_retry_consumer_then_runs_again(valkey_url: str) -> None:
    """A failure is handed to the retry consumer without counting a delivery; once it
    has waited the visibility timeout it is taken back and run with attempt 2."""
    seen: list[tuple[int, int]] = []

    def handler(task: Task, ctx: Context) -> Result:
        seen.append((task.n, ctx.attempt))
        if ctx.attempt == 1:
            raise RuntimeError("flaky model server")
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "t.in", {"n": 7})
        m = echo_mesh(visibility_timeout=1.0)
        w = worker(m, "echo", handler, redis_url=valkey_url)
        async with running(w):
            await until(lambda: asyncio.sleep(0, bool(seen)))
            await asyncio.sleep(0.2)
            [row] = await r.xpending_range("t.in", "echo", "-", "+", 1)
            assert row["consumer"].decode() == RETRY_CONSUMER and row["times_delivered"] == 1
            await until(has(r, "t.out", 1))
        assert seen == [(7, 1), (7, 2)]
        await r.aclose()

    asyncio.run(scenario())


def test_outputs_carry_the_handlers_time_in_took(valkey_url: str) -> None:
    async def handler(task: Task, ctx: Context) -> Result:
        if task.n:  # n=0 returns at once: its call takes microseconds, even under load
            await asyncio.sleep(0.03)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "t.in", {"n": 0})
        await add(r, "t.in", {"n": 1})
        async with running(worker(echo_mesh(), "echo", handler, redis_url=valkey_url)):
            await until(has(r, "t.out", 2))
        out = await entries(r, "t.out")
        rows = {p["n"]: f for (_, f), p in zip(out, payloads(out), strict=True)}
        assert b"took" not in rows[0]  # under a millisecond: no field
        assert 30 <= int(rows[1][b"took"]) < 10_000
        await r.aclose()

    asyncio.run(scenario())
