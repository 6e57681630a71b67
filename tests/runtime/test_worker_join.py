"""Aggregator joins: exactly one result per task, timeouts, late partials, failures."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import orjson
from meshc.runtime import keys
from meshc.runtime.context import Context, Joined
from meshc.runtime.join import join_id
from meshc.runtime.spec import JoinSpec, MeshSpec
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until
from worker_kit import Part, Summary, agent, key_names, mesh, payloads, worker

LANES = ("a", "b", "c")


def join_mesh(timeout: float = 5.0, partitions: int = 1, **kw: Any) -> MeshSpec:
    """Three lane streams ``t.part.<lane>`` joined on ``doc`` into ``t.sum``."""
    streams: dict[str, Any] = {f"t.part.{lane}": Part for lane in LANES}
    join = JoinSpec(on=("doc",), timeout=timeout, lanes={f"t.part.{x}": x for x in LANES})
    agg = agent(
        "agg", tuple(streams), ("t.sum",), role="aggregator", handler="merge", join=join, **kw
    )
    return mesh({**streams, "t.sum": Summary}, [agg], partitions=partitions)


async def send(r: Redis, doc: str, lane: str, key: str = "", trace: str = "") -> bytes:
    stream = key or f"t.part.{lane}"
    return await add(r, stream, {"doc": doc, "lane": lane, "score": len(doc)}, trace=trace or doc)


def test_two_racing_aggregators_emit_exactly_one_result_per_task(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = join_mesh(batch=1)
        one = worker(m, "agg", None, redis_url=valkey_url, consumer="one")
        two = worker(m, "agg", None, redis_url=valkey_url, consumer="two")
        sent: dict[str, set[bytes]] = {}
        async with running(one, two):
            for i in range(40):
                for lane in LANES:
                    sent.setdefault(f"d{i}", set()).add(await send(r, f"d{i}", lane))
            await until(has(r, "t.sum", 40))
            await asyncio.sleep(0.2)
        rows = await entries(r, "t.sum")
        docs = [orjson.loads(f[b"data"])["doc"] for _, f in rows]
        assert sorted(docs) == sorted(f"d{i}" for i in range(40))  # once each
        assert one.stats.joins_emitted + two.stats.joins_emitted == 40
        assert one.stats.joins_emitted and two.stats.joins_emitted  # both really raced
        for _, f in rows:
            doc = orjson.loads(f[b"data"])
            assert doc["missing"] == [] and sorted(doc["parts"]) == list(LANES)
            assert doc["parts"]["a"] == {"doc": doc["doc"], "lane": "a", "score": len(doc["doc"])}
            assert f[b"trace"] == doc["doc"].encode() and f[b"agent"] == b"agg"
            # The parent is the partial that completed the join; with two replicas
            # racing, that need not be the one sent last.
            assert f[b"parent"] in sent[doc["doc"]]
        assert await r.keys("m:agg:join:*") == []  # state cleared, done markers kept
        assert len(await r.keys("m:agg:done:*")) == 40
        await r.aclose()

    asyncio.run(scenario())


def test_join_timeout_emits_missing_then_late_partial_is_counted(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = join_mesh(timeout=0.3)
        w = worker(m, "agg", None, redis_url=valkey_url)
        async with running(w):
            await send(r, "x", "a")
            await send(r, "x", "c")
            started = time.monotonic()
            await until(has(r, "t.sum", 1))
            assert time.monotonic() - started >= 0.25
            await send(r, "x", "b")
            await until(lambda: asyncio.sleep(0, w.stats.late == 1))
            await asyncio.sleep(0.4)
        [summary] = payloads(await entries(r, "t.sum"))
        assert summary["missing"] == ["b"] and sorted(summary["parts"]) == ["a", "c"]
        assert await r.get(keys.late_counter("m", "agg")) == b"1"
        assert (await r.xpending("t.part.b", "agg"))["pending"] == 0
        await r.aclose()

    asyncio.run(scenario())


def test_failing_merge_is_retried_then_dead_lettered(valkey_url: str) -> None:
    attempts: list[int] = []

    def bad_merge(joined: Joined, ctx: Context) -> dict[str, Any]:
        attempts.append(ctx.attempt)
        raise ValueError("cannot merge")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = join_mesh(max_deliveries=2, visibility_timeout=0.1)
        async with running(worker(m, "agg", bad_merge, redis_url=valkey_url)):
            for lane in LANES:
                await send(r, "y", lane)
            await until(has(r, "m.dlq.agg", 1))
        assert attempts == [1, 2] and await r.xlen("t.sum") == 0
        [(_, letter)] = await entries(r, "m.dlq.agg")
        assert letter[b"error"] == b"ValueError: cannot merge" and letter[b"deliveries"] == b"2"
        assert sorted(orjson.loads(letter[b"data"])) == list(LANES)
        await r.aclose()

    asyncio.run(scenario())


def test_crash_after_store_is_recovered_by_the_sweeper(valkey_url: str) -> None:
    """A worker that dies after storing the last partial loses nothing: the deadline
    sweep of any replica emits the complete join."""
    crash = threading.Event()

    def merge_or_crash(joined: Joined, ctx: Context) -> dict[str, Any]:
        if not crash.is_set():
            crash.set()
            raise SystemExit  # not an Exception: escapes like a dying process
        return {"doc": joined.key["doc"], "parts": {}, "missing": list(joined.missing)}

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = join_mesh(timeout=0.3, concurrency=1)
        for lane in LANES:
            await send(r, "z", lane)
        doomed = worker(m, "agg", merge_or_crash, redis_url=valkey_url)
        with contextlib.suppress(SystemExit):
            await doomed.run()
        assert await r.xlen("t.sum") == 0 and await r.exists('m:agg:join:["z","z"]')
        async with running(worker(m, "agg", merge_or_crash, redis_url=valkey_url)):
            await until(has(r, "t.sum", 1))
        assert payloads(await entries(r, "t.sum")) == [{"doc": "z", "parts": {}, "missing": []}]
        await r.aclose()

    asyncio.run(scenario())


def test_partitioned_join_keys_share_the_tag(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = join_mesh(partitions=2)
        async with running(worker(m, "agg", None, redis_url=valkey_url)):
            for lane in LANES:
                await send(r, "{odd}", lane, key=keys.stream_key(f"t.part.{lane}", "m", 1, 2))
            await until(has(r, "t.sum{m:1}", 1))
        [summary] = payloads(await entries(r, "t.sum{m:1}"))
        assert summary["doc"] == "{odd}"
        private = await key_names(r, "m:agg:*")
        assert private and all(k.endswith("{m:1}") and k.count("{") == 1 for k in private)
        await r.aclose()

    asyncio.run(scenario())


def test_join_id_is_brace_free() -> None:
    assert join_id(["d1", 2]) == '["d1",2]'
    assert join_id(["{x}"]).startswith("h:") and "{" not in join_id(["{x}"])
