"""Retention under load: ``admin.trim`` in a loop while producers write and slow
consumers fall behind and retry.

XTRIM removes entries that a group still holds pending (docs/facts.md): the pending list
keeps the id, and the work is silently lost. The intake here has two reading agents
(two groups), a tight ``maxlen`` and a short ``max_age``; one agent is slow, and both
fail the first delivery of every seventh task, so old entries stay pending (until
reclaimed) while newer ones are acknowledged around them. After every trim, one
atomic snapshot (MULTI) checks that each group's pending ids and undelivered entries
are all still in the stream; at the end every task has exactly one output per agent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
import redis
from meshc.ops import admin
from meshc.ops.client import MeshClient
from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec
from meshc.runtime.wire import id_order
from meshc.runtime.worker import Worker
from pydantic import BaseModel

TASKS = 600
MAXLEN = 40


class Task(BaseModel):
    n: int


def _mesh() -> MeshSpec:
    fast = Policy(batch=20, visibility_timeout=0.3, max_deliveries=5)
    slow = Policy(batch=5, visibility_timeout=0.3, max_deliveries=5)
    streams = {
        "ret.in": StreamSpec("ret.in", Task, maxlen=MAXLEN, max_age=0.05),
        "ret.fast": StreamSpec("ret.fast", Task, terminal=True),
        "ret.slow": StreamSpec("ret.slow", Task, terminal=True),
    }
    agents = {
        "feed": AgentSpec("feed", "producer", (), ("ret.in",), ""),
        "fast": AgentSpec("fast", "sink", ("ret.in",), ("ret.fast",), "m:f", policy=fast),
        "slow": AgentSpec("slow", "sink", ("ret.in",), ("ret.slow",), "m:s", policy=slow),
    }
    return MeshSpec("ret", 1, streams, agents)


def _handler(delay: float) -> Any:
    def handle(task: Task, ctx: Any) -> Task:
        if task.n % 7 == 0 and ctx.attempt == 1:
            raise RuntimeError("first delivery fails: stays pending until reclaimed")
        time.sleep(delay)
        return task

    return handle


def _check_snapshot(r: redis.Redis, written: list[str]) -> int:
    """Pending and undelivered entries of every group are still in the stream; returns
    how many pending entries the trim had to keep."""
    pipe = r.pipeline(transaction=True)  # one atomic view of the stream and its groups
    pipe.xinfo_groups("ret.in")
    pipe.xpending_range("ret.in", "fast", "-", "+", 10_000)
    pipe.xpending_range("ret.in", "slow", "-", "+", 10_000)
    pipe.xrange("ret.in")
    groups, *pendings, rows = pipe.execute()
    present = {eid.decode() for eid, fields in rows if fields}
    held = 0
    for group, pending in zip(("fast", "slow"), pendings, strict=True):
        ids = {p["message_id"].decode() for p in pending}
        assert ids <= present, f"{group}: pending entries trimmed away: {sorted(ids - present)}"
        held += len(ids)
    for g in groups:
        last = id_order(g["last-delivered-id"].decode())
        undelivered = {e for e in written if id_order(e) > last}
        assert undelivered <= present, f"{g['name']}: undelivered entries trimmed away"
    return held


def _wait_for_groups(r: redis.Redis, names: set[str]) -> None:
    """The snapshot reads each group's pending list: wait until the workers made them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            have = {g["name"].decode() for g in r.xinfo_groups("ret.in")}
        except redis.ResponseError:
            have = set()
        if names <= have:
            return
        time.sleep(0.02)
    raise AssertionError(f"the workers did not create the groups {sorted(names)}")


def test_trimming_in_a_loop_never_removes_pending_or_undelivered_work(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="meshc.worker")
    mesh = _mesh()
    stop = threading.Event()
    workers = [
        Worker(mesh, "fast", _handler(0.0), redis_url=server_url, stop=stop, block_ms=20),
        Worker(mesh, "slow", _handler(0.004), redis_url=server_url, stop=stop, block_ms=20),
        Worker(mesh, "slow", _handler(0.004), redis_url=server_url, stop=stop, block_ms=20),
    ]
    threads = [threading.Thread(target=asyncio.run, args=(w.run(),)) for w in workers]
    for t in threads:
        t.start()
    r = redis.Redis.from_url(server_url)
    _wait_for_groups(r, {"fast", "slow"})
    written: list[str] = []
    lock = threading.Lock()

    def produce() -> None:
        with MeshClient(mesh, server_url) as client:
            for start in range(0, TASKS, 20):
                sent = client.submit_many([{"n": n} for n in range(start, start + 20)])
                with lock:
                    written.extend(s.entry_id for s in sent)
                time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    trims = removed = held_back = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            removed += admin.trim(mesh, r)
            trims += 1
            with lock:
                snapshot = list(written)
            held_back += _check_snapshot(r, snapshot) > 0
            done = r.xlen("ret.fast") >= TASKS and r.xlen("ret.slow") >= TASKS
            if done and not producer.is_alive():
                break
    finally:
        producer.join()
        stop.set()
        for t in threads:
            t.join(timeout=30)
    for out in ("ret.fast", "ret.slow"):
        ns = sorted(int(f[b"data"].decode().split(":")[1].rstrip("}")) for _, f in r.xrange(out))
        assert ns == list(range(TASKS)), f"{out}: a task lost or doubled"
    assert r.xlen("ret.dlq.fast") == 0 and r.xlen("ret.dlq.slow") == 0
    assert "trimmed away" not in caplog.text
    # The trims did real work and were really held back by pending entries.
    assert trims > 20 and removed > TASKS - 5 * MAXLEN and held_back > 0
    admin.trim(mesh, r)  # nothing pending now: down to the bound
    assert r.xlen("ret.in") <= MAXLEN
    r.close()
