"""Policy shared through the server: rate limits across replicas, the 429 hold, the
reply cache under redelivery; and the per-process cap on calls in flight."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fake_server import FakeLLM
from llm_kit import data, llm_mesh, worker
from meshc.ops import admin
from meshc.runtime.commit import CommitBatch
from meshc.runtime.llm.store import Limits, SharedState, bucket
from meshc.runtime.worker import Worker
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until


def test_requests_per_minute_hold_across_two_replicas(valkey_url: str, fake_llm: FakeLLM) -> None:
    """60 a minute is a full bucket of 60, then one a second: 63 calls take >= 3 s."""
    rpm, n = 60, 63
    mesh = llm_mesh(
        fake_llm.url,
        requests_per_minute=rpm,
        policy={"concurrency": 8, "visibility_timeout": 30.0},
    )

    async def scenario() -> list[Worker]:
        r = Redis.from_url(valkey_url)
        for i in range(n):
            await add(r, "q.in", {"n": i, "text": "x"})
        replicas = [worker(mesh, valkey_url, consumer=f"c{i}") for i in range(2)]
        replicas[0].reader.count = replicas[1].reader.count = n // 2  # both get work
        async with running(*replicas):
            await until(has(r, "q.out", n), timeout=20)
        assert sorted(data(f)["n"] for _, f in await entries(r, "q.out")) == list(range(n))
        await r.aclose()
        return replicas

    replicas = asyncio.run(scenario())
    assert all(w.stats.committed > 0 for w in replicas)
    times = sorted(fake_llm.times())
    assert len(times) == n
    expected = (n - rpm) * 60 / rpm
    assert times[-1] - times[0] >= expected * 0.95
    for i, t in enumerate(times):  # never ahead of the bucket: 60 at once, then 1/s
        allowed = rpm + (t - times[0]) * rpm / 60
        assert i + 1 <= allowed + 1, f"request {i + 1} at {t - times[0]:.2f} s"


def test_bucket_script_takes_refunds_and_holds(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        state = SharedState(r, "m", "ask", 1)
        limits = Limits(tokens_per_minute=600)  # 10 tokens a second, 600 at most
        key = [state.bucket_key]
        assert await state.take(limits, 400) == 0
        wait = await _bucket(r, key, ("take", 1, 400, 0, 600))
        assert 19_000 <= wait <= 20_100  # 200 left: 200 more at 10 a second
        await state.settle(limits, 300)  # the call used 100 of the 400 reserved
        assert await state.take(limits, 400) == 0
        too_big = await _bucket(r, key, ("take", 1, 10_000, 0, 600))
        assert 0 < too_big <= 60_000  # more than a minute's worth waits for a full bucket
        await state.hold(0.3)
        assert await _bucket(r, key, ("take", 1, 0, 0, 0)) > 200  # held, even unlimited
        started = time.monotonic()
        assert await state.take(Limits(), 0) > 0.2
        assert time.monotonic() - started >= 0.25
        assert await r.type(state.bucket_key) == b"hash"
        await r.aclose()

    asyncio.run(scenario())


async def _bucket(r: Redis, keys: list[str], args: tuple[str | int, ...]) -> int:
    """The bucket script called directly, for the milliseconds it answers."""
    return int(await bucket(r, keys, args))


def test_a_429_holds_every_replica(valkey_url: str, fake_llm: FakeLLM) -> None:
    """After one replica's 429 with Retry-After, no replica calls before it expires."""
    fake_llm.then("429")
    fake_llm.retry_after = "0.8"
    mesh = llm_mesh(fake_llm.url, policy={"concurrency": 4, "visibility_timeout": 30.0})

    async def scenario() -> list[Worker]:
        r = Redis.from_url(valkey_url)
        replicas = [worker(mesh, valkey_url, consumer=f"c{i}") for i in range(2)]
        async with running(*replicas):
            await add(r, "q.in", {"n": 0, "text": "first"})
            await until(lambda: _seen(fake_llm, 1))
            for i in range(1, 5):  # the other replica takes these while the first waits
                await add(r, "q.in", {"n": i, "text": "x"})
            await until(has(r, "q.out", 5))
        await r.aclose()
        return replicas

    replicas = asyncio.run(scenario())
    assert all(w.stats.committed > 0 for w in replicas)
    first, *rest = fake_llm.times()
    assert len(rest) == 5 and min(rest) - first >= 0.75


async def _seen(fake: FakeLLM, n: int) -> bool:
    return len(fake.requests) >= n


def test_max_concurrent_caps_calls_in_flight(valkey_url: str, fake_llm: FakeLLM) -> None:
    fake_llm.mode = "slow"
    fake_llm.slow_seconds = 0.15
    mesh = llm_mesh(fake_llm.url, max_concurrent=2, policy={"concurrency": 8})

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        for i in range(8):
            await add(r, "q.in", {"n": i, "text": "x"})
        async with running(worker(mesh, valkey_url)):
            await until(has(r, "q.out", 8))
        await r.aclose()

    asyncio.run(scenario())
    assert fake_llm.max_in_flight == 2


class Died(Exception):
    pass


class DiesBeforeCommit(Worker):
    """A replica that calls the model, then dies before its commit (nothing is acked)."""

    async def send_commit(self, batch: CommitBatch) -> None:
        raise Died


def test_a_redelivered_message_does_not_call_the_model_again(
    valkey_url: str, fake_llm: FakeLLM
) -> None:
    mesh = llm_mesh(fake_llm.url, policy={"visibility_timeout": 0.2})

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        eid = await add(r, "q.in", {"n": 5, "text": "once"})
        first = DiesBeforeCommit(mesh, "ask", None, redis_url=valkey_url, block_ms=20)
        with pytest.raises(Died):
            await first.run()
        assert len(fake_llm.requests) == 1 and await r.xlen("q.out") == 0
        assert (await r.xpending("q.in", "ask"))["pending"] == 1
        second = worker(mesh, valkey_url, consumer="second")
        async with running(second):
            await until(has(r, "q.out", 1))
        [(_, out)] = await entries(r, "q.out")
        assert data(out) == {"n": 5, "text": "ONCE"} and out[b"parent"] == eid
        assert out[b"attempt"] == b"2" and out[b"llm_cached"] == b"1"
        assert out[b"llm_calls"] == b"1" and int(out[b"llm_tokens"]) > 0  # the original cost
        names: Any = await r.keys("m:ask:llm:reply:*")
        [reply_key] = [k.decode() for k in names]
        assert reply_key.startswith(f"m:ask:llm:reply:q.in:{eid.decode()}:")
        assert 0 < await r.ttl(reply_key) <= 86_400
        await r.aclose()

    asyncio.run(scenario())
    assert len(fake_llm.requests) == 1
    totals = admin.status(mesh, valkey_url)["agents"]["ask"]["llm"]
    assert totals["cache_hits"] == 1 and totals["calls"] == 1
