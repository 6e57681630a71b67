"""The server-side scripts on their own: the gates that make outputs exactly-once."""

from __future__ import annotations

import asyncio
from typing import Any

from meshc.runtime import scripts
from meshc.runtime.context import Context
from meshc.runtime.transport import make_client
from meshc.runtime.wire import Delivery
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until
from worker_kit import Result, Task, echo_mesh, worker


def test_commit_writes_outputs_only_for_the_first_ack(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        eid = await add(r, "in", {"n": 1})
        await r.xgroup_create("in", "a", id="0")
        await r.xreadgroup("a", "c", {"in": ">"})
        batch = scripts.CommitBatch(b"a", b"a")
        d = Delivery(b"in", "in", 0, eid, {b"data": b"{}"}, attempt=2)
        batch.outputs(d, [(b"out", b'{"x":1}'), (b"out2", b"{}")])
        assert await scripts.commit.many(r, batch.calls()) == [[1, 0]]
        assert await scripts.commit.many(r, batch.calls()) == [[0, 1]]  # a replay
        [(_, fields)] = await entries(r, "out")
        assert fields == {
            b"data": b'{"x":1}',
            b"trace": eid,
            b"parent": eid,
            b"agent": b"a",
            b"attempt": b"2",
        }
        assert await r.xlen("out2") == 1
        await r.aclose()

    asyncio.run(scenario())


def test_commit_falls_back_to_eval_after_a_script_flush(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        await r.script_flush()
        await add(r, "in", {"n": 1})
        await r.xgroup_create("in", "a", id="0")
        batch = scripts.CommitBatch(b"a", b"a")
        batch.entries(Delivery(b"in", "in", 0, b"1-1", {}), ())
        batch.entries(Delivery(b"in{m:1}", "in", 1, b"1-1", {}), ())
        await r.xgroup_create("in{m:1}", "a", id="0", mkstream=True)
        assert await scripts.commit.many(r, batch.calls()) == [[0, 1], [0, 1]]
        await r.aclose()

    asyncio.run(scenario())


def test_join_emit_is_gated_by_done_and_by_the_parts_seen(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        await r.hset("j", mapping={"a": "{}", ".trace": "t", ".parent": "1-1", ".fails": "0"})
        await r.zadd("dl", {"J": 1})

        def call(expected: int) -> tuple[list[bytes], list[Any]]:
            record = [2, 3, "J", expected, "t", "1-1", 1, 1, 4, b'{"r":1}']
            return [b"dl", b"j", b"done", b"out"], ["agg", 60, *record]

        assert await scripts.join_emit(r, *call(2)) == [b"changed"]
        assert await scripts.join_emit(r, *call(1)) == [b"emitted"]
        assert await scripts.join_emit(r, *call(1)) == [b"done"]
        assert await r.xlen("out") == 1 and not await r.exists("j") and not await r.zcard("dl")
        assert 0 < await r.ttl("done") <= 60
        await r.aclose()

    asyncio.run(scenario())


def test_client_packs_every_argument_type(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        await r.set("k", 1.5)
        await r.hset("h", mapping={"i": 3, "s": "é", "b": b"\x00\xff"})
        assert await r.get("k") == b"1.5"
        assert await r.hgetall("h") == {b"i": b"3", b"s": "é".encode(), b"b": b"\x00\xff"}
        await r.aclose()

    asyncio.run(scenario())


def test_worker_over_a_unix_socket(valkey_unix_url: str) -> None:
    def upper(task: Task, ctx: Context) -> Result:
        return Result(n=task.n, text=task.text.upper())

    async def scenario() -> None:
        r = Redis.from_url(valkey_unix_url)
        await add(r, "t.in", {"n": 1, "text": "x"})
        async with running(worker(echo_mesh(), "echo", upper, redis_url=valkey_unix_url)):
            await until(has(r, "t.out", 1))
        await r.aclose()

    asyncio.run(scenario())
