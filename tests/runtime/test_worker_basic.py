"""The worker's happy paths: wire format, batching, outputs, validation, partitions."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
import pytest
from meshc.runtime import keys
from meshc.runtime.context import Context
from meshc.runtime.errors import ConfigError, UndeclaredStream
from meshc.runtime.process.agent import run_agent
from redis.asyncio import Redis
from stream_kit import add, add_fields, entries, has, running, until
from worker_kit import Note, Result, Task, agent, echo_mesh, key_names, mesh, payloads, worker


def upper(task: Task, ctx: Context) -> Result:
    return Result(n=task.n, text=task.text.upper())


def test_pass_through_batch_and_wire_format(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = echo_mesh(batch=40)
        bare = [await add(r, "t.in", {"n": i, "text": f"t{i}"}) for i in range(150)]
        headed = await add(r, "t.in", {"n": 999}, trace="T-root", parent="1-1", agent="x")
        w = worker(m, "echo", upper, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 151))
        rows = await entries(r, "t.out")
        assert len(rows) == 151 and w.stats.committed == 151
        by_parent = {f[b"parent"]: f for _, f in rows}
        for i, eid in enumerate(bare):
            f = by_parent[eid]
            # An outside producer's entry (data alone) is its own root: trace = its id.
            assert f[b"trace"] == eid and f[b"agent"] == b"echo" and f[b"attempt"] == b"1"
            assert orjson.loads(f[b"data"]) == {"n": i, "text": f"T{i}"}
        assert by_parent[headed][b"trace"] == b"T-root"
        assert await r.xpending("t.in", "echo") == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }
        await r.aclose()

    asyncio.run(scenario())


def test_multi_output_mapping_emit_and_undeclared_stream(valkey_url: str) -> None:
    seen: list[str] = []

    def split(task: Task, ctx: Context) -> dict[str, Any] | None:
        if task.n < 0:
            try:
                ctx.emit("t.nowhere", {"n": 1})
            except UndeclaredStream as exc:
                seen.append(str(exc))
                raise
        ctx.emit("t.notes", Note(n=task.n, note="first"))
        return {
            "t.out": {"n": task.n, "text": "r"},
            "t.notes": [{"n": task.n, "note": "a"}, {"n": task.n, "note": "b"}],
        }

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = mesh(
            {"t.in": Task, "t.out": Result, "t.notes": Note},
            [agent("split", ("t.in",), ("t.out", "t.notes"), max_deliveries=1)],
        )
        await add(r, "t.in", {"n": 1})
        bad = await add(r, "t.in", {"n": -1})
        w = worker(m, "split", split, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.notes", 3))
            await until(has(r, "m.dlq.split", 1))
        assert payloads(await entries(r, "t.out")) == [{"n": 1, "text": "r"}]
        assert [p["note"] for p in payloads(await entries(r, "t.notes"))] == ["first", "a", "b"]
        assert seen and "t.nowhere" in seen[0]
        [(_, letter)] = await entries(r, "m.dlq.split")
        assert letter[b"source_id"] == bad and b"UndeclaredStream" in letter[b"error"]
        await r.aclose()

    asyncio.run(scenario())


def test_invalid_inputs_go_to_the_dead_letter_stream_at_once(valkey_url: str) -> None:
    calls: list[int] = []

    def count(task: Task, ctx: Context) -> Result:
        calls.append(task.n)
        return Result(n=task.n, text="ok")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = echo_mesh(max_payload_bytes=200)
        wrong = await add(r, "t.in", {"n": "not a number"})
        broken = await add(r, "t.in", b"{not json")
        huge = await add(r, "t.in", {"n": 1, "text": "x" * 500})
        no_data = await add_fields(r, "t.in", {"other": "field"})
        await add(r, "t.in", {"n": 7})
        w = worker(m, "echo", count, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "m.dlq.echo", 4))
            await until(has(r, "t.out", 1))
        letters = {f[b"source_id"]: f for _, f in await entries(r, "m.dlq.echo")}
        assert b"invalid Task payload" in letters[wrong][b"error"]
        assert b"int_parsing" in letters[wrong][b"error"]
        assert b"json_invalid" in letters[broken][b"error"]
        assert b"exceeds 200" in letters[huge][b"error"]
        assert b"no `data` field" in letters[no_data][b"error"]
        for f in letters.values():
            assert f[b"deliveries"] == b"1" and f[b"source_stream"] == b"t.in"
            assert f[b"agent"] == b"echo"
        assert letters[wrong][b"data"] == b'{"n":"not a number"}'
        assert calls == [7]
        assert (await r.xpending("t.in", "echo"))["pending"] == 0
        await r.aclose()

    asyncio.run(scenario())


def test_async_handler_respects_concurrency(valkey_url: str) -> None:
    active = 0
    peak = 0

    async def slow(task: Task, ctx: Context) -> Result:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.03)
        active -= 1
        return Result(n=task.n, text=ctx.trace)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(12):
            await add(r, "t.in", {"n": i})
        w = worker(echo_mesh(concurrency=3), "echo", slow, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 12))
        assert peak == 3
        await r.aclose()

    asyncio.run(scenario())


def test_slow_handlers_get_a_small_read_ahead(valkey_url: str) -> None:
    async def slow(task: Task, ctx: Context) -> Result:
        await asyncio.sleep(0.05)
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(16):
            await add(r, "t.in", {"n": i})
        m = echo_mesh(concurrency=2, visibility_timeout=0.4)
        w = worker(m, "echo", slow, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 16))
        # what 2 lanes start within 0.1 s (visibility_timeout / 4) at 0.05 s a call: 4
        assert 2 <= w.window.ahead <= 4
        await r.aclose()

    asyncio.run(scenario())


def test_sync_handlers_run_in_threads_with_concurrency(valkey_url: str) -> None:
    threads: set[str] = set()
    loop_thread = threading.current_thread().name
    lock = threading.Lock()
    active = [0, 0]  # now, peak

    def record(task: Task, ctx: Context) -> Result:
        with lock:
            threads.add(threading.current_thread().name)
            active[0] += 1
            active[1] = max(active)
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return Result(n=task.n, text="")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(20):
            await add(r, "t.in", {"n": i})
        w = worker(echo_mesh(concurrency=2), "echo", record, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "t.out", 20))
        assert loop_thread not in threads and len(threads) == 2 and active[1] == 2
        await r.aclose()

    asyncio.run(scenario())


def test_context_carries_message_and_agent(valkey_url: str) -> None:
    got: list[Context] = []

    def keep(task: Task, ctx: Context) -> None:
        got.append(ctx)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        eid = await add(r, "t.in", {"n": 1}, trace="tr-1")
        m = echo_mesh()
        w = worker(m, "echo", keep, redis_url=valkey_url)
        async with running(w):
            await until(lambda: _acked(r, "t.in", "echo", 1))
        [ctx] = got
        assert (ctx.agent, ctx.trace, ctx.entry_id, ctx.attempt, ctx.stream) == (
            "echo",
            "tr-1",
            eid.decode(),
            1,
            "t.in",
        )
        assert ctx.spec is m.agents["echo"] and ctx.log.name == "meshc.worker.echo"
        assert await r.xlen("t.out") == 0  # None: nothing to emit
        await r.aclose()

    asyncio.run(scenario())


async def _acked(r: Redis, key: str, group: str, n: int) -> bool:
    info = await r.xinfo_groups(key)
    return bool(info) and info[0]["entries-read"] == n and info[0]["pending"] == 0


def test_partitions_keep_the_tag_on_every_key(valkey_url: str) -> None:
    def maybe_fail(task: Task, ctx: Context) -> Result:
        if task.n == 3:
            raise ValueError("no threes")
        return Result(n=task.n, text=str(ctx.partition))

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = echo_mesh(partitions=4, max_deliveries=1)
        for p in range(4):
            await add(r, keys.stream_key("t.in", "m", p, 4), {"n": p})
        w = worker(m, "echo", maybe_fail, redis_url=valkey_url)
        async with running(w):
            await until(has(r, "m.dlq.echo{m:3}", 1))
            for p in range(3):
                await until(has(r, f"t.out{{m:{p}}}", 1))
        for p in range(3):
            assert payloads(await entries(r, f"t.out{{m:{p}}}")) == [{"n": p, "text": str(p)}]
        names = await key_names(r, "*")
        assert names == sorted(
            [f"t.in{{m:{p}}}" for p in range(4)]
            + [f"t.out{{m:{p}}}" for p in range(3)]
            + ["m.dlq.echo{m:3}"]
        )
        await r.aclose()

    asyncio.run(scenario())


def test_served_partitions_subset(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = echo_mesh(partitions=2)
        await add(r, "t.in{m:0}", {"n": 0})
        await add(r, "t.in{m:1}", {"n": 1})
        w = worker(m, "echo", upper, redis_url=valkey_url, partitions=[1])
        async with running(w):
            await until(has(r, "t.out{m:1}", 1))
        assert await r.xlen("t.out{m:0}") == 0
        await r.aclose()

    asyncio.run(scenario())


def test_config_errors() -> None:
    m = echo_mesh(partitions=2)
    with pytest.raises(ConfigError, match="no agent"):
        worker(m, "nobody", upper, redis_url="redis://x")
    with pytest.raises(ConfigError, match="outside range"):
        worker(m, "echo", upper, redis_url="redis://x", partitions=[2])
    with pytest.raises(ConfigError, match="no handler"):
        worker(m, "echo", None, redis_url="redis://x")
    assert run_agent(m, "nobody", upper, redis_url="redis://x") == 2
