"""The server-side scripts on their own: the gates that make outputs exactly-once."""

from __future__ import annotations

import asyncio
from typing import Any

from meshc.runtime import scripts
from meshc.runtime.commit import CommitBatch
from meshc.runtime.context import Context
from meshc.runtime.transport import make_client
from meshc.runtime.wire import Delivery
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until
from worker_kit import Result, Task, echo_mesh, worker

HEAD = (b"a", b"a", 0)  # group, agent, no extra header fields


async def _pending(r: Redis, n: int) -> list[bytes]:
    """``n`` entries in ``in``, read by consumer ``c`` of group ``a``: their ids."""
    ids = [await add(r, "in", {"n": i}) for i in range(n)]
    await r.xgroup_create("in", "a", id="0")
    await r.xreadgroup("a", "c", {"in": ">"})
    return ids


def _delivery(eid: bytes, attempt: int = 1) -> Delivery:
    return Delivery(b"in", "in", 0, eid, {b"data": b"{}"}, attempt=attempt)


def test_commit_run_records_write_each_output_once_with_its_header(valkey_url: str) -> None:
    """The common path: a run of one-output inputs ('r' records), then a replay of the
    same call writes nothing (every XACK returns 0)."""

    async def scenario() -> None:
        r = make_client(valkey_url)
        ids = await _pending(r, 3)
        batch = CommitBatch(HEAD)
        for i, eid in enumerate(ids):
            batch.outputs(_delivery(eid), [(b"out", b'{"i":%d}' % i)], b"12" if i else b"")
        assert batch.calls()[0][1].count(b"r") == 1  # one run for all three
        assert await scripts.commit.many(r, batch.calls()) == [[3, 0]]
        assert await scripts.commit.many(r, batch.calls()) == [[0, 3]]  # a replay
        rows = await entries(r, "out")
        assert [f[b"parent"] for _, f in rows] == ids
        assert rows[0][1] == {
            b"data": b'{"i":0}', b"trace": ids[0], b"parent": ids[0],
            b"agent": b"a", b"attempt": b"1",
        }  # fmt: skip
        assert rows[1][1][b"took"] == b"12"
        await r.aclose()

    asyncio.run(scenario())


def test_commit_multi_output_records_are_gated_by_the_ack(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        [eid] = await _pending(r, 1)
        batch = CommitBatch(HEAD)
        batch.outputs(_delivery(eid, attempt=2), [(b"out", b'{"x":1}'), (b"out2", b"{}")], b"")
        assert await scripts.commit.many(r, batch.calls()) == [[1, 0]]
        assert await scripts.commit.many(r, batch.calls()) == [[0, 1]]
        [(_, fields)] = await entries(r, "out")
        assert fields[b"attempt"] == b"2" and await r.xlen("out2") == 1
        await r.aclose()

    asyncio.run(scenario())


def test_commit_free_form_records_are_gated_by_the_ack(valkey_url: str) -> None:
    """Dead letters ('f' records): written once, only by the commit that acked."""

    async def scenario() -> None:
        r = make_client(valkey_url)
        [eid] = await _pending(r, 1)
        batch = CommitBatch(HEAD)
        batch.entries(_delivery(eid), [(b"dlq", [b"data", b"{}", b"error", b"bad"])])
        assert await scripts.commit.many(r, batch.calls()) == [[1, 0]]
        assert await scripts.commit.many(r, batch.calls()) == [[0, 1]]
        assert await r.xlen("dlq") == 1
        await r.aclose()

    asyncio.run(scenario())


def test_commit_header_fields_of_the_writer_go_on_every_output(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        [eid] = await _pending(r, 1)
        batch = CommitBatch((b"a", b"a", 1, b"schema", b"3:abc"))
        batch.outputs(_delivery(eid), [(b"out", b"{}")], b"")
        await scripts.commit.many(r, batch.calls())
        [(_, fields)] = await entries(r, "out")
        assert fields[b"schema"] == b"3:abc"
        await r.aclose()

    asyncio.run(scenario())


def test_commit_records_with_header_fields_of_their_own(valkey_url: str) -> None:
    """An 'h' record: the standard header, the writer's fields, then the input's own
    (what its handler added); gated by the ack like the others."""

    async def scenario() -> None:
        r = make_client(valkey_url)
        [eid] = await _pending(r, 1)
        batch = CommitBatch((b"a", b"a", 1, b"schema", b"3:abc"))
        own = [b"llm_tokens", b"42", b"llm_model", b"tiny"]
        batch.outputs(_delivery(eid), [(b"out", b"{}"), (b"out2", b"[]")], b"7", own)
        assert await scripts.commit.many(r, batch.calls()) == [[1, 0]]
        assert await scripts.commit.many(r, batch.calls()) == [[0, 1]]
        [(_, fields)] = await entries(r, "out")
        assert list(fields) == [
            b"data", b"trace", b"parent", b"agent", b"attempt", b"took",
            b"schema", b"llm_tokens", b"llm_model",
        ]  # fmt: skip
        assert (fields[b"took"], fields[b"llm_tokens"]) == (b"7", b"42")
        assert await r.xlen("out2") == 1
        await r.aclose()

    asyncio.run(scenario())


def test_park_hands_a_failed_entry_to_the_retry_consumer_only_from_its_holder(
    valkey_url: str,
) -> None:
    """A failed call's entry goes to the retry consumer without a delivery counted, and
    without an ack; a worker that no longer holds it cannot take it from its new owner."""

    async def scenario() -> None:
        r = make_client(valkey_url)
        first, second = await _pending(r, 2)
        await r.xclaim("in", "a", "other", 0, [second])
        batch = CommitBatch(HEAD)
        batch.park(_delivery(first), "c")
        batch.park(_delivery(second), "c")  # "other" holds it now
        assert await scripts.commit.many(r, batch.calls()) == [[0, 0]]
        rows = {x["message_id"]: x for x in await r.xpending_range("in", "a", "-", "+", 10)}
        assert rows[first]["consumer"].decode() == scripts.RETRY_CONSUMER
        assert rows[first]["times_delivered"] == 1
        assert rows[second]["consumer"] == b"other"
        await r.aclose()

    asyncio.run(scenario())


def test_keepalive_refreshes_only_what_this_consumer_still_holds(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        mine, taken = await _pending(r, 2)
        await asyncio.sleep(0.3)
        await r.xclaim("in", "a", "other", 0, [taken])
        lost = await scripts.keepalive(r, [b"in"], ["a", "c", 1, 2, mine, taken])
        assert lost == [taken]
        rows = {x["message_id"]: x for x in await r.xpending_range("in", "a", "-", "+", 10)}
        assert rows[mine]["time_since_delivered"] < 200 and rows[mine]["times_delivered"] == 1
        assert rows[mine]["consumer"] == b"c" and rows[taken]["consumer"] == b"other"
        await r.aclose()

    asyncio.run(scenario())


def test_commit_loads_its_script_again_after_a_script_flush(valkey_url: str) -> None:
    async def scenario() -> None:
        r = make_client(valkey_url)
        await r.script_flush()
        await add(r, "in", {"n": 1})
        await r.xgroup_create("in", "a", id="0")
        batch = CommitBatch(HEAD)
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
            record = [2, 3, "J", expected, "t", "1-1", 1, "", "", 1, 4, b'{"r":1}']
            return [b"dl", b"j", b"done", b"out"], ["agg", 60, 0, *record]

        assert await scripts.join_emit(r, *call(2)) == [b"changed"]
        assert await scripts.join_emit(r, *call(1)) == [b"emitted"]
        assert await scripts.join_emit(r, *call(1)) == [b"done"]
        assert await r.xlen("out") == 1 and not await r.exists("j") and not await r.zcard("dl")
        assert 0 < await r.ttl("done") <= 60
        await r.aclose()

    asyncio.run(scenario())


def test_join_store_keeps_traceparents_beside_the_lanes_not_as_one(valkey_url: str) -> None:
    """While tracing, each partial's ``traceparent`` goes to the hash's ``.links``; the
    join completes on its lanes alone, and the result carries the merge's context."""
    tp = {lane: f"00-{'a' * 32}-{lane * 16}-01" for lane in "bc"}

    async def scenario() -> None:
        r = make_client(valkey_url)
        for lane in ("in.b", "in.c"):
            await r.xgroup_create(lane, "agg", id="0", mkstream=True)
        keys = [b"dl", b"late"]
        complete = []
        for lane in "bc":
            eid = await r.xadd(f"in.{lane}", {"data": "{}"})
            await r.xreadgroup("agg", "c", {f"in.{lane}": ">"})
            record = [3, eid, 4, 5, "J", lane, "{}", "t", 2, "", tp[lane]]
            args = ["agg", 2, 60_000, *record]
            late, stale, complete = await scripts.join_store(
                r, [*keys, f"in.{lane}".encode(), b"j", b"done"], args
            )
            assert (late, stale) == (0, 0)
            assert (complete != []) is (lane == "c"), "the join completes on its second lane"
        links = (await r.hget("j", ".links")).split()
        assert links == [tp["b"].encode(), tp["c"].encode()]
        merged = f"00-{'a' * 32}-{'d' * 16}-01"
        record = [2, 3, "J", 2, "t", "1-1", 1, "", merged, 1, 4, b'{"r":1}']
        emit = await scripts.join_emit(r, [b"dl", b"j", b"done", b"out"], ["agg", 60, 0, *record])
        assert emit == [b"emitted"]
        [(_, fields)] = await r.xrange("out")
        assert fields[b"traceparent"] == merged.encode() and fields[b"data"] == b'{"r":1}'
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
