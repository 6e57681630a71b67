"""Task-scoped header fields: a join completes with the lanes its task was sent to, and
is keyed by the task's root entry, not by the caller's ``trace``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from meshc.ops.admin import dlq_redrive
from meshc.runtime import taskhead
from meshc.runtime.context import Context
from meshc.runtime.errors import PermanentError
from meshc.runtime.spec import JoinSpec, MeshSpec, StreamSpec
from pydantic import BaseModel
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until
from worker_kit import Part, Summary, agent, mesh, worker

LANES = ("a", "b", "c")


class Doc(BaseModel):
    doc: str


def fan_mesh(timeout: float = 5.0) -> MeshSpec:
    """``t.task`` -> coord (fanout) -> ``t.in.<lane>`` -> lane -> ``t.part.<lane>`` -> agg."""
    streams: dict[str, Any] = {"t.task": Doc, "t.sum": Summary}
    streams |= {f"t.in.{x}": Doc for x in LANES} | {f"t.part.{x}": Part for x in LANES}
    join = JoinSpec(on=("doc",), timeout=timeout, lanes={f"t.part.{x}": x for x in LANES})
    agents = [
        agent(
            "coord",
            ("t.task",),
            tuple(f"t.in.{x}" for x in LANES),
            role="coordinator",
            handler="fanout",
        ),  # fmt: skip
        *(agent(x, (f"t.in.{x}",), (f"t.part.{x}",)) for x in LANES),
        agent(
            "agg",
            tuple(f"t.part.{x}" for x in LANES),
            ("t.sum",),
            role="aggregator",
            handler="merge",
            join=join,
        ),  # fmt: skip
    ]
    return mesh(streams, agents)


def lane(name: str) -> Any:
    def review(d: Doc, ctx: Context) -> Part:
        return Part(doc=d.doc, lane=name, score=len(d.doc))

    return review


def workers(m: MeshSpec, url: str, coord: Any = None) -> list[Any]:
    return [
        worker(m, "coord", coord, redis_url=url),
        *(worker(m, x, lane(x), redis_url=url) for x in LANES),
        worker(m, "agg", None, redis_url=url),
    ]


def summaries(rows: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    return [orjson.loads(f[b"data"]) for _, f in rows]


def test_two_tasks_with_one_trace_and_one_key_give_two_whole_results(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = fan_mesh()
        async with running(*workers(m, valkey_url)):
            first = await add(r, "t.task", {"doc": "d"}, trace="same")
            second = await add(r, "t.task", {"doc": "d"}, trace="same")
            await until(has(r, "t.sum", 2))
            await asyncio.sleep(0.2)  # a third (mixed) result would show by now
        rows = await entries(r, "t.sum")
        assert len(rows) == 2
        for doc in summaries(rows):
            assert sorted(doc["parts"]) == list(LANES) and doc["missing"] == []
        parts = [f for x in LANES for _, f in await entries(r, f"t.in.{x}")]
        assert {f[taskhead.ROOT] for f in parts} == {first, second}
        assert {f[taskhead.LANES] for f in parts} == {b"a,b,c"}
        assert int(await r.get("m:agg:late") or 0) == 0
        await r.aclose()

    asyncio.run(scenario())


def test_a_task_sent_to_some_lanes_joins_those_and_misses_none(valkey_url: str) -> None:
    def two_lanes(d: Doc, ctx: Context) -> None:
        if d.doc != "all":
            ctx.emit("t.in.a", d)
            ctx.emit("t.in.b", d)
        else:
            for x in LANES:
                ctx.emit(f"t.in.{x}", d)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = fan_mesh(timeout=30.0)  # a join waiting for `c` would not end within the test
        async with running(*workers(m, valkey_url, two_lanes)):
            await add(r, "t.task", {"doc": "some"})
            await add(r, "t.task", {"doc": "all"})
            await until(has(r, "t.sum", 2))
        by_doc = {d["doc"]: d for d in summaries(await entries(r, "t.sum"))}
        assert sorted(by_doc["some"]["parts"]) == ["a", "b"] and by_doc["some"]["missing"] == []
        assert sorted(by_doc["all"]["parts"]) == list(LANES) and by_doc["all"]["missing"] == []
        await r.aclose()

    asyncio.run(scenario())


def test_missing_names_the_expected_lanes_that_did_not_arrive(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = fan_mesh(timeout=0.3)
        head = {"trace": "t", "task.root": "1-1", "task.lanes": "a,b"}
        async with running(worker(m, "agg", None, redis_url=valkey_url)):
            await add(r, "t.part.a", {"doc": "x", "lane": "a", "score": 1}, **head)
            await until(has(r, "t.sum", 1))
        (doc,) = summaries(await entries(r, "t.sum"))
        assert sorted(doc["parts"]) == ["a"] and doc["missing"] == ["b"]  # not `c`: not sent
        await r.aclose()

    asyncio.run(scenario())


def test_workers_copy_task_fields_and_add_none_without_them(valkey_url: str) -> None:
    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = fan_mesh()
        m.streams["t.part.a"] = StreamSpec("t.part.a", Part, fingerprint="f00d")
        async with running(worker(m, "a", lane("a"), redis_url=valkey_url)):
            await add(r, "t.in.a", {"doc": "bare"})
            await add(r, "t.in.a", {"doc": "task"}, **{"task.root": "9-9", "task.lanes": "a"})
            await until(has(r, "t.part.a", 2))
        bare, task = (f for _, f in await entries(r, "t.part.a"))
        assert set(bare) - {b"took"} == {b"data", b"trace", b"parent", b"agent", b"attempt",
                                         b"schema"}  # fmt: skip
        assert bare[b"schema"] == b"m@1/f00d"
        assert (task[taskhead.ROOT], task[taskhead.LANES]) == (b"9-9", b"a")
        await r.aclose()

    asyncio.run(scenario())


def test_a_dead_letter_keeps_the_task_fields_and_a_redrive_restores_them(
    valkey_url: str,
) -> None:
    def refuse(d: Doc, ctx: Context) -> Part:
        raise PermanentError("no")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        m = fan_mesh()
        head = {"trace": "t", "task.root": "5-5", "task.lanes": "a,b"}
        async with running(worker(m, "a", refuse, redis_url=valkey_url)):
            await add(r, "t.in.a", {"doc": "x"}, **head)
            await until(has(r, "m.dlq.a", 1))
            await r.xtrim("t.in.a", maxlen=0)  # the original is gone: the letter must say
        ((_, letter),) = await entries(r, "m.dlq.a")
        assert (letter[taskhead.ROOT], letter[taskhead.LANES]) == (b"5-5", b"a,b")
        assert dlq_redrive(m, "a", valkey_url) == 1
        ((_, again),) = await entries(r, "t.in.a")
        assert (again[taskhead.ROOT], again[taskhead.LANES]) == (b"5-5", b"a,b")
        await r.aclose()

    asyncio.run(scenario())
