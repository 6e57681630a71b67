"""Cluster benchmark: the review mesh on one server against a three-primary cluster.

The mesh has the review mesh's shape (coordinator, four no-op lanes, aggregator with
the built-in merge) with 16 partitions routed by ``doc_id``, so the keys, scripts and
batches are the same everywhere and only the server changes:

* ``1 node``: one ``valkey-server``;
* ``3 primaries``: a cluster of three ``valkey-server`` (no replicas);
* ``3 + 3 replicas``: each primary with a replica (asynchronous replication);
* ``3 + 3, WAIT 1``: the same with ``MESHC_WAIT_REPLICAS=1`` in every worker (each
  commit waits until the replica has it).

Each agent runs as one worker process. N tasks are preloaded into the intake, then the
workers are told GO and timed until the N-th summary exists. Every server process and
every worker share the two cores of this machine, so a cluster can only lose here:
three servers do not get three CPUs, and each batch costs one round trip per node it
touches instead of one. docs/cluster.md models what the same design does when each
node has its own cores.

    python -m bench.cluster [--quick | --smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    REVIEW_LANES,
    LensResult,
    Mode,
    Report,
    ReviewTask,
    Table,
    add_mode_args,
    child_wait_go,
    children,
    emit,
    machine,
    median,
    mode_of,
    review_shape,
    server,
)

PARTITIONS = 16
LANES = REVIEW_LANES
TASKS = "cb.tasks"
SUMMARY = "cb.summary"
SIZES: dict[Mode, dict[str, int]] = {
    "smoke": {"tasks": 200, "reps": 1, "commits": 20},
    "quick": {"tasks": 3_000, "reps": 1, "commits": 200},
    "full": {"tasks": 10_000, "reps": 3, "commits": 500},
}
SETUPS = ("1 node", "3 primaries", "3 + 3 replicas", "3 + 3, WAIT 1")
SERVERS = ("1 node", "3 primaries", "3 + 3")  # WAIT runs on the 3 + 3 cluster, paired


def lane(task: ReviewTask, ctx: Any) -> LensResult:
    return LensResult(doc_id=task.doc_id, chunk_id=task.chunk_id, lens=ctx.agent, score=1)


def review_mesh() -> Any:
    """The review mesh's shape, 16 partitions by ``doc_id``."""
    return review_shape("cb", "bench.cluster:lane", partitions=PARTITIONS, partition_key="doc_id")


_RUN = uuid.uuid4().hex[:6]
_RUNS = itertools.count()


def task(run: int, i: int) -> dict[str, Any]:
    """Task ``i`` of a run; join keys never repeat (a repeated one would count as late)."""
    return {"doc_id": f"d-{_RUN}-{run}-{i}", "chunk_id": 0, "text": "A sentence to review."}


# -- one configuration ----------------------------------------------------------------


@dataclass
class Measure:
    """One run: tasks/s, and CPU milliseconds per task spent by servers and workers."""

    rate: float
    server_ms: float
    worker_ms: float


@contextlib.contextmanager
def servers(setup: str) -> Iterator[tuple[str, list[int]]]:
    """The server URL of a configuration and its server pids, for the body of the block."""
    if setup == "1 node":
        with server() as srv:
            yield srv.url, [srv.proc.pid]
        return
    from meshc.testing.cluster import LocalCluster

    with LocalCluster(3, 0 if setup == "3 primaries" else 1) as c:  # or "3 + 3"
        yield c.url, [n.proc.pid for n in c.nodes if n.proc is not None]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes so far, from /proc (no psutil needed)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def throughput(url: str, server_pids: list[int], n: int, wait: int) -> Measure:
    """Tasks/s through the mesh: ``n`` preloaded, timed from GO to the n-th summary."""
    from meshc.ops.client import MeshClient

    mesh = review_mesh()
    agents = sorted(name for name, spec in mesh.agents.items() if spec.reads)
    args = [("bench.cluster", ["worker", a, "--url", url, "--wait", str(wait)]) for a in agents]
    run = next(_RUNS)
    with MeshClient(mesh, url) as client, children(args) as workers:
        client.redis.flushall()
        client.submit_many(task(run, i) for i in range(n))
        pids = [w.pid for w in workers]
        cpu = (cpu_seconds(server_pids), cpu_seconds(pids))
        start = time.perf_counter()
        for w in workers:
            w.go()
        _wait_summaries(client.redis, n, timeout=max(60.0, n / 20))
        seconds = time.perf_counter() - start
        used = (cpu_seconds(server_pids) - cpu[0], cpu_seconds(pids) - cpu[1])
    return Measure(n / seconds, used[0] * 1000 / n, used[1] * 1000 / n)


def _wait_summaries(r: Any, n: int, timeout: float) -> None:
    from meshc.runtime import keys

    summary_keys = [keys.stream_key(SUMMARY, "cb", p, PARTITIONS) for p in range(PARTITIONS)]
    deadline = time.monotonic() + timeout
    while True:
        pipe = r.pipeline(transaction=False)
        for key in summary_keys:
            pipe.xlen(key)
        if sum(int(x) for x in pipe.execute()) >= n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} summaries did not appear within {timeout:g} s")
        time.sleep(0.005)


def run(mode: Mode = "full") -> Report:
    size = SIZES[mode]
    started = time.perf_counter()
    rates: dict[str, list[Measure]] = {s: [] for s in SETUPS}
    for rep in range(size["reps"]):
        forward = rep % 2 == 0
        for setup in SERVERS if forward else tuple(reversed(SERVERS)):
            with servers(setup) as (url, pids):
                if setup != "3 + 3":
                    rates[setup].append(throughput(url, pids, size["tasks"], 0))
                    continue
                for wait in (0, 1) if forward else (1, 0):  # the same servers, back to back
                    name = "3 + 3, WAIT 1" if wait else "3 + 3 replicas"
                    rates[name].append(throughput(url, pids, size["tasks"], wait))
                latency = commit_latency(url, size["commits"])
    report = _report(rates, size, latency)
    report.seconds = time.perf_counter() - started
    return report


def commit_latency(url: str, n: int) -> dict[str, float]:
    """Median ms of one commit-sized script call (one partition), alone and followed by
    WAIT 1 on the same connection: what WAIT adds to each batch's round trip."""
    import asyncio

    from meshc.runtime import scripts
    from meshc.runtime.replicas import ReplicaWait
    from meshc.runtime.transport import make_client

    async def measure() -> dict[str, float]:
        r = make_client(url)
        script = scripts.Script("redis.call('XADD', KEYS[1], '*', 'data', ARGV[1]) return 1")
        calls = [((b"bench.latency{cb:0}",), (b"x" * 100,))]
        wait = ReplicaWait(1, 1000)
        out: dict[str, list[float]] = {"no WAIT": [], "WAIT 1": []}
        for i in range(n * 2):
            start = time.perf_counter()
            if i % 2:
                await wait.many(script, r, calls)
            else:
                await script.many(r, calls)
            out["WAIT 1" if i % 2 else "no WAIT"].append((time.perf_counter() - start) * 1000)
        await r.aclose()
        return {k: median(v[5:]) for k, v in out.items()}

    return asyncio.run(measure())


def _report(
    runs: dict[str, list[Measure]], size: dict[str, int], latency: dict[str, float]
) -> Report:
    rates = {k: [m.rate for m in ms] for k, ms in runs.items()}
    base = median(rates["1 node"])
    table = Table(
        "Review mesh, 16 partitions, one worker process per agent",
        ["setup", "server processes", "tasks/s", "messages/s", "vs 1 node",
         "server CPU ms/task", "worker CPU ms/task"],
    )  # fmt: skip
    procs = {"1 node": 1, "3 primaries": 3, "3 + 3 replicas": 6, "3 + 3, WAIT 1": 6}
    for setup in SETUPS:
        rate = median(rates[setup])
        server_ms = median([m.server_ms for m in runs[setup]])
        worker_ms = median([m.worker_ms for m in runs[setup]])
        table.rows.append([setup, procs[setup], rate, rate * 9, rate / base, server_ms, worker_ms])
    pairs = zip(rates["3 + 3, WAIT 1"], rates["3 + 3 replicas"], strict=True)
    wait_cost = 1 - median([waited / free for waited, free in pairs])
    lat = Table(
        "One commit script on a 3 + 3 cluster (median ms per call)",
        ["call", "ms"],
        [[name, ms] for name, ms in latency.items()],
    )
    return Report(
        name="cluster",
        tables=[table, lat],
        notes=[
            "messages/s counts the nine messages each task makes the agents consume "
            "(1 task, 4 lane inputs, 4 lane results)",
            f"WAIT 1 after every commit costs {wait_cost:.0%} of the throughput here "
            "(median of runs paired on the same cluster)",
            f"{os.cpu_count()} cores shared by every server and worker process: see "
            "docs/cluster.md for what limits these figures and how they grow with nodes",
        ],
        params={
            "tasks": size["tasks"],
            "repetitions": size["reps"],
            "partitions": PARTITIONS,
            "rates": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
            "machine": machine(),
        },
    )


# -- the worker child -------------------------------------------------------------------


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.cluster worker")
    parser.add_argument("agent")
    parser.add_argument("--url", required=True)
    parser.add_argument("--wait", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ["MESHC_WAIT_REPLICAS"] = str(args.wait)
    import asyncio

    from meshc.runtime.worker import Worker

    handler = lane if args.agent in LANES else None
    w = Worker(review_mesh(), args.agent, handler, redis_url=args.url)
    child_wait_go()

    async def serve() -> None:
        import signal

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, w.request_stop)
        await w.run()

    asyncio.run(serve())


def main(argv: list[str] | None = None) -> None:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["worker"]:
        worker_main(args_list[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    add_mode_args(parser)
    args = parser.parse_args(args_list)
    emit(run(mode_of(args)), args.json)


if __name__ == "__main__":
    main()
