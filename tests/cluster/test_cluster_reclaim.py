"""A replica of an agent dies on a cluster: the others take over its pending entries.

Two replicas of ``work`` run as processes on a three-primary cluster. One of them hangs
in its handler after reading a batch, and is killed (SIGKILL: no chance to commit).
Its entries stay pending in the consumer groups of every partition it read; the other
replica claims them once they have been idle ``visibility_timeout`` and finishes them,
each exactly once, with the second delivery counted in the output's header.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import redis
from cluster_kit import meshc, wait_for
from meshc.codegen.build import build_cached
from meshc.ops.client import MeshClient
from meshc.runtime import keys
from meshc.runtime.connect import connect
from meshc.testing.cluster import LocalCluster

PARTITIONS = 8
VISIBILITY = 2.0
TASKS = 120
MESH = f"""\
mesh: reclaim
version: 1
partitions: {PARTITIONS}
partition_key: n
types:
  Job: {{n: int}}
streams:
  r.in: {{type: Job}}
  r.out: {{type: Job, terminal: true}}
agents:
  feed: {{role: producer, writes: [r.in]}}
  work:
    role: specialist
    reads: [r.in]
    writes: [r.out]
    handler: reclaim_handlers:work
    replicas: 2
    batch: 10
    visibility_timeout: {VISIBILITY:g}s
"""
HANDLERS = """\
import os
import time


def work(payload, ctx):
    if os.environ.get("RECLAIM_HANG") == "1":
        time.sleep(3600)  # a replica that stops making progress, then dies
    time.sleep(0.005)
    return {"n": payload.n}
"""


def test_pending_entries_of_a_dead_replica_are_reclaimed(
    cluster: LocalCluster, workdir: Path
) -> None:
    (workdir / "reclaim.yaml").write_text(MESH)
    (workdir / "reclaim_handlers.py").write_text(textwrap.dedent(HANDLERS))
    out = workdir / "out"
    done = meshc("compile", "reclaim.yaml", "-o", str(out), cwd=workdir)
    assert done.returncode == 0, done.stderr
    spec = build_cached(str(workdir / "reclaim.yaml"), workdir).load_spec()
    r = connect(cluster.url)

    with MeshClient(spec, cluster.url) as client:
        sent = client.submit_many([{"n": i} for i in range(TASKS)])
    hanging = _replica(out, workdir, cluster.url, "hanging", hang=True)
    try:
        wait_for(lambda: _consumers(r, "hanging"), what="the hanging replica's first read")
        wait_for(lambda: _pending(r, "hanging") > 0, what="entries pending on the hanging one")
        healthy = _replica(out, workdir, cluster.url, "healthy", hang=False)
        try:
            time.sleep(0.5)
            held = _pending(r, "hanging")
            hanging.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            with MeshClient(spec, cluster.url) as client:
                found = client.wait_many([s.trace for s in sent], timeout=30)
            took = time.monotonic() - killed
        finally:
            healthy.send_signal(signal.SIGTERM)
            assert healthy.wait(30) == 0
    finally:
        hanging.kill()
        hanging.wait()
    assert len(found) == TASKS
    outputs = _outputs(r)
    assert sorted(n for n, _ in outputs) == list(range(TASKS))  # each exactly once
    retried = [n for n, attempt in outputs if attempt == 2]
    assert len(retried) == held, (held, retried)
    assert _pending(r, "hanging") == 0 and _pending(r, "healthy") == 0
    # Idle entries become claimable VISIBILITY after they were read (before the kill);
    # the healthy replica looks every VISIBILITY / 2.
    assert took < VISIBILITY * 2 + 2, took
    print(f"\n{held} entries held by the killed replica, all reclaimed {took:.2f} s after the kill")
    r.close()


def _replica(out: Path, workdir: Path, url: str, name: str, hang: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(out), str(workdir)]),
        "RECLAIM_HANG": "1" if hang else "0",
    }
    argv = [sys.executable, "-m", "reclaim.agents.work", "--redis", url, "--consumer", name]
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the child
    return subprocess.Popen(argv, cwd=workdir, env=env, stderr=log)


def _keys(stream: str) -> list[str]:
    return [keys.stream_key(stream, "reclaim", p, PARTITIONS) for p in range(PARTITIONS)]


def _consumers(r: object, name: str) -> bool:
    """Has consumer ``name`` shown up in the group of every partition (it read once)?"""
    try:
        return all(
            any(c["name"] == name.encode() for c in r.xinfo_consumers(k, "work"))  # type: ignore[attr-defined]
            for k in _keys("r.in")
        )
    except redis.ResponseError:  # no stream or group yet
        return False


def _pending(r: object, name: str) -> int:
    total = 0
    for k in _keys("r.in"):
        for c in r.xinfo_consumers(k, "work"):  # type: ignore[attr-defined]
            if c["name"] == name.encode():
                total += int(c["pending"])
    return total


def _outputs(r: object) -> list[tuple[int, int]]:
    found = []
    for k in _keys("r.out"):
        for _, fields in r.xrange(k):  # type: ignore[attr-defined]
            found.append((orjson.loads(fields[b"data"])["n"], int(fields[b"attempt"])))
    return found
