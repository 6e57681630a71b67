"""Retries count a delivery only for the entry that is handed to the handler.

The delivery count decides when a message is given up on (``max_deliveries``), so it
must not grow for an entry that never ran. A worker that dies while retrying stops
where it is: the entries it had not reached yet keep their counts. (End to end, with a
message that SIGKILLs its worker, in test_poison.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
import redis
from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec
from meshc.runtime.worker import Worker
from pydantic import BaseModel


class Item(BaseModel):
    n: int


def _mesh() -> MeshSpec:
    policy = Policy(batch=50, visibility_timeout=0.1, max_deliveries=3)
    streams = {"rc.in": StreamSpec("rc.in", Item), "rc.out": StreamSpec("rc.out", Item)}
    agent = AgentSpec("work", "specialist", ("rc.in",), ("rc.out",), "m:w", policy=policy)
    return MeshSpec("rc", 1, streams, {"work": agent})


def test_retrying_stops_where_it_is_without_counting_the_rest(server_url: str) -> None:
    r = redis.Redis.from_url(server_url)
    ids = [r.xadd("rc.in", {"data": orjson.dumps({"n": n})}) for n in range(5)]
    r.xgroup_create("rc.in", "work", id="0")
    r.xreadgroup("work", "dead", {"rc.in": ">"})  # a replica that read all five and died
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def handler(item: Item, ctx: Any) -> Item:
        seen.append((item.n, ctx.attempt))
        stop.set()  # this replica is stopped too, right after its first retry
        return item

    worker = Worker(_mesh(), "work", handler, redis_url=server_url, stop=stop, block_ms=20)
    time.sleep(0.15)  # idle past the visibility timeout
    asyncio.run(worker.run())
    assert seen == [(0, 2)]  # the oldest idle entry, on its second delivery
    counts = {p["message_id"]: p["times_delivered"] for p in r.xpending_range(
        "rc.in", "work", "-", "+", 10)}  # fmt: skip
    assert counts == {i: 1 for i in ids[1:]}, "the four not run yet were not counted"
    assert r.xlen("rc.out") == 1
    r.close()


def test_each_retried_entry_is_committed_before_the_next_is_taken(server_url: str) -> None:
    """So an entry that kills its worker takes none of the others with it."""
    r = redis.Redis.from_url(server_url)
    for n in range(4):
        r.xadd("rc.in", {"data": orjson.dumps({"n": n})})
    r.xgroup_create("rc.in", "work", id="0")
    r.xreadgroup("work", "dead", {"rc.in": ">"})
    outputs_when_called: list[int] = []

    def handler(item: Item, ctx: Any) -> Item:
        outputs_when_called.append(int(r.xlen("rc.out")))
        return item

    stop = threading.Event()
    worker = Worker(_mesh(), "work", handler, redis_url=server_url, stop=stop, block_ms=20)

    async def scenario() -> None:
        await asyncio.sleep(0.15)
        task = asyncio.create_task(worker.run())
        while int(r.xlen("rc.out")) < 4:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(scenario())
    assert outputs_when_called == [0, 1, 2, 3]
    assert r.xpending("rc.in", "work")["pending"] == 0
    r.close()
