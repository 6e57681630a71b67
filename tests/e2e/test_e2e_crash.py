"""A replica killed with SIGKILL in the middle of a batch loses nothing.

Its pending entries stay in the group's pending list; after ``visibility_timeout``
the other replica reclaims them (XAUTOCLAIM), and the commit script's XACK gate keeps
every output single.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import redis
from e2e_kit import build, pending, wait_for, write_mesh, xlen
from meshc.codegen.build import Built
from meshc.ops.client import MeshClient, read_range
from meshc.runtime.process.launch import URL_ENV

TASKS = 200
MESH = """\
    mesh: crashy
    version: 1
    types:
      Job: {n: int}
    streams:
      c.in: {type: Job}
      c.out: {type: Job, terminal: true}
    agents:
      feed: {role: producer, writes: [c.in]}
      work:
        role: specialist
        reads: [c.in]
        writes: [c.out]
        handler: crashy_handlers:work
        batch: 50
        visibility_timeout: 300ms
        max_deliveries: 5
"""
HANDLERS = """\
    import time

    def work(payload, ctx):
        time.sleep(0.01)  # a batch of 50 takes half a second: long enough to die inside it
        return {"n": payload.n}
"""


@contextmanager
def replica(built: Built, url: str, consumer: str) -> Iterator[subprocess.Popen[bytes]]:
    """One ``work`` replica, run directly as ``python -m crashy.agents.work``."""
    env = {**os.environ, **built.worker_env(), URL_ENV: url}
    argv = [sys.executable, "-m", f"{built.package}.agents.work", "--consumer", consumer]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def consumer_pending(url: str, consumer: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        rows = client.xpending_range("c.in", "work", "-", "+", 1000, consumername=consumer)
        return len(rows)
    except redis.ResponseError:  # NOGROUP: the replica has not created its group yet
        return 0
    finally:
        client.close()


def test_sigkilled_replica_loses_no_work(server: str, workdir: Path) -> None:
    built, spec = build(write_mesh(workdir, "crashy", MESH, HANDLERS))
    with MeshClient(spec, server) as client:
        client.submit_many([{"n": n} for n in range(TASKS)])
    with replica(built, server, "doomed") as doomed:
        wait_for(lambda: consumer_pending(server, "doomed") > 0, what="doomed reads a batch")
        time.sleep(0.2)  # part of the batch is done, its commit is not
        with replica(built, server, "survivor"):
            held = consumer_pending(server, "doomed")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            assert held > 0
            wait_for(lambda: xlen(server, "c.out") >= TASKS, what=f"{TASKS} outputs")
            wait_for(lambda: pending(server, "c.in", "work") == 0, what="nothing pending")
            time.sleep(0.5)  # a duplicate, if any, would show up now
    outputs = read_range(redis.Redis.from_url(server), "c.out")
    numbers = sorted(orjson.loads(fields[b"data"])["n"] for _, fields in outputs)
    assert numbers == list(range(TASKS))  # each exactly once
    assert any(int(fields[b"attempt"]) >= 2 for _, fields in outputs), "nothing was reclaimed"
    assert consumer_pending(server, "doomed") == 0
