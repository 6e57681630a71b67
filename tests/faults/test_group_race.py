"""Twenty replicas of one agent started at the same instant.

Each replica creates the agent's consumer group on start (from ``0``, MKSTREAM,
BUSYGROUP is success). Started together they race on that creation; the outcome must
be one group, twenty consumers, and every entry, written before the group existed or
while the replicas were starting, handled and committed exactly once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import orjson
import redis
from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec
from meshc.runtime.worker import Worker
from pydantic import BaseModel

REPLICAS = 20


class Item(BaseModel):
    n: int


def _mesh() -> MeshSpec:
    policy = Policy(batch=7, visibility_timeout=30.0)  # small reads spread the work
    streams = {"race.in": StreamSpec("race.in", Item), "race.out": StreamSpec("race.out", Item)}
    agent = AgentSpec("work", "specialist", ("race.in",), ("race.out",), "m:w", policy=policy)
    return MeshSpec("race", 1, streams, {"work": agent})


def _race(url: str, before: int, during: int) -> tuple[list[str], Counter[str]]:
    """Write ``before`` entries, start the replicas together while writing ``during``
    more, run until all are out; the ids written and how often each was handled."""
    r = redis.Redis.from_url(url)
    written = [r.xadd("race.in", {"data": orjson.dumps({"n": i})}).decode() for i in range(before)]
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(item: Item, ctx: Any) -> Item:
        with lock:
            handled[ctx.entry_id] += 1
        return item

    stop = threading.Event()
    gate = threading.Barrier(REPLICAS + 1)
    mesh = _mesh()
    workers = [
        Worker(mesh, "work", handler, redis_url=url, consumer=f"c{i}", stop=stop, block_ms=20)
        for i in range(REPLICAS)
    ]
    errors: list[BaseException] = []

    def replica(w: Worker) -> None:
        gate.wait()
        try:
            asyncio.run(w.run())
        except Exception as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    gate.wait()  # everyone starts now; the producer keeps writing meanwhile
    for i in range(during):
        written.append(r.xadd("race.in", {"data": orjson.dumps({"n": before + i})}).decode())
    deadline = time.monotonic() + 30
    while r.xlen("race.out") < len(written) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # a duplicate, if any, would land now
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    groups = r.xinfo_groups("race.in")
    assert [(g["name"], g["consumers"], g["pending"]) for g in groups] == [(b"work", REPLICAS, 0)]
    outputs = Counter(f[b"parent"].decode() for _, f in r.xrange("race.out"))
    r.close()
    assert outputs == Counter(written), "every entry exactly one output"
    return written, handled


def test_twenty_replicas_starting_at_once_on_a_filled_stream(server_url: str) -> None:
    written, handled = _race(server_url, before=400, during=0)
    assert handled == Counter(written)  # nothing skipped, nothing handled twice
    assert len([c for c in handled.values() if c]) == 400


def test_twenty_replicas_racing_mkstream_while_a_producer_writes(server_url: str) -> None:
    written, handled = _race(server_url, before=0, during=300)
    assert handled == Counter(written)
