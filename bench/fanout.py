"""Benchmark 3: fan-out latency and mesh throughput on the review mesh's shape.

The mesh is built in-process from ``MeshSpec`` records (the shape of
``meshes/doc_review.yaml``): a producer writes ``rv.tasks``; a coordinator (the
built-in ``fanout``) sends each task to four lanes; four specialists answer on their
own streams; an aggregator joins the four answers (the built-in ``merge``) into
``rv.summary``. Every agent runs as its own worker process (``python -m bench.fanout
worker …``), as ``meshc run`` runs them; the caller is a ``MeshClient`` (submit, then
wait on the terminal stream).

1. Lanes sleep 200 ms (a slow tool call). End-to-end latency of one task at a time
   against (a) calling the four handlers one after the other and (b) a Celery chord
   of the same four sleeping tasks plus a merge, on the same server (broker and
   result backend), with a Celery worker process (thread pool, concurrency 4).
2. No-op lanes: latency of the three-hop path (coordinator, lane, aggregator) at
   light load (one task in flight at a time), then throughput: N tasks preloaded
   into the intake, timed from GO until N summaries exist.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench.common import (
    REVIEW_LANES,
    Check,
    Child,
    LensResult,
    Mode,
    Report,
    ReviewTask,
    Table,
    add_baseline_arg,
    add_mode_args,
    child_wait_go,
    children,
    emit,
    median,
    mode_of,
    percentile,
    review_shape,
    server,
    use_meshc_from,
    wait_length,
)

LANES = REVIEW_LANES
TASKS = "rv.tasks"
SUMMARY = "rv.summary"
SLEEP = 0.2
IO_SLEEP = 0.01
CPU_LOOPS = 40_000  # about 2 ms of pure-Python work on these machines
SIZES: dict[Mode, dict[str, int]] = {
    "smoke": {"slow": 2, "celery": 2, "seq": 1, "light": 20, "rounds": 1, "tasks": 200, "ab": 2},
    "quick": {"slow": 8, "celery": 8, "seq": 2, "light": 150, "rounds": 2, "tasks": 4_000, "ab": 2},
    "full": {
        "slow": 20,
        "celery": 20,
        "seq": 3,
        "light": 400,
        "rounds": 3,
        "tasks": 15_000,
        "ab": 4,
    },
}
TARGET_SLOW = 1.05
TARGET_P50_MS = 2.5
TARGET_P99_MS = 10.0


# -- handlers (what the lanes do in each mode) ----------------------------------------


def _result(task: ReviewTask, lens: str) -> LensResult:
    return LensResult(doc_id=task.doc_id, chunk_id=task.chunk_id, lens=lens, score=len(task.text))


def lane_sleep(task: ReviewTask, ctx: Any) -> LensResult:
    time.sleep(SLEEP)
    return _result(task, ctx.agent)


def lane_noop(task: ReviewTask, ctx: Any) -> LensResult:
    return _result(task, ctx.agent)


def lane_io(task: ReviewTask, ctx: Any) -> LensResult:
    time.sleep(IO_SLEEP)
    return _result(task, ctx.agent)


def burn(loops: int = CPU_LOOPS) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def lane_cpu(task: ReviewTask, ctx: Any) -> LensResult:
    burn()
    return _result(task, ctx.agent)


HANDLERS: dict[str, Callable[..., Any]] = {
    "sleep": lane_sleep,
    "noop": lane_noop,
    "io": lane_io,
    "cpu": lane_cpu,
}


def review_mesh(mode: str, replicas: int = 1, concurrency: int = 1) -> Any:
    """The review mesh's shape with lanes in ``mode``."""
    from meshc.runtime.spec import Policy

    # Slow handlers get small batches so replicas share the work evenly.
    batch = 10 if mode == "io" else 100
    lane_policy = Policy(replicas=replicas, concurrency=concurrency, batch=batch)
    return review_shape("rv", f"bench.fanout:lane_{mode}", lane_policy=lane_policy)


_RUN = uuid.uuid4().hex[:8]


def task(i: int) -> dict[str, Any]:
    """Task ``i`` of this run. The join key (doc_id, chunk_id) must never repeat: a
    partial for a key whose join is done counts as late and emits nothing."""
    return {
        "doc_id": f"doc-{_RUN}-{i // 8}",
        "chunk_id": i % 8,
        "text": "A sentence to review. " * 4,
    }


# -- running a mesh -----------------------------------------------------------------


@contextlib.contextmanager
def mesh_workers(
    url: str,
    mode: str,
    replicas: int = 1,
    concurrency: int = 1,
    async_lanes: bool = False,
    meshc: str | None = None,
) -> Iterator[list[Child]]:
    """One child per replica of every agent that reads; all READY (not yet GO).
    ``meshc``: import meshc from that folder (a baseline tree) in every child."""
    mesh = review_mesh(mode, replicas, concurrency)
    common = ["--url", url, "--mode", mode, "--replicas", str(replicas)]
    common += ["--concurrency", str(concurrency)] + (["--async-lanes"] if async_lanes else [])
    common += ["--meshc", meshc] if meshc else []
    argv = [
        ["worker", name, *common]
        for name, spec in sorted(mesh.agents.items())
        if spec.reads
        for _ in range(spec.policy.replicas)
    ]
    with children([("bench.fanout", args) for args in argv]) as started:
        yield started


_NEXT = itertools.count(10_000_000)  # task numbers: a join key is never reused


def throughput(
    url: str, mode: str, n: int, replicas: int = 1, concurrency: int = 1, meshc: str | None = None
) -> float:
    """Tasks/s through the whole mesh: ``n`` tasks preloaded, timed from GO to the last
    summary. Leaves the workers stopped and the server flushed."""
    from meshc.ops.client import MeshClient

    mesh = review_mesh(mode, replicas, concurrency)
    with MeshClient(mesh, url) as client:
        client.redis.flushdb()
        with mesh_workers(url, mode, replicas, concurrency, meshc=meshc) as workers:
            client.submit_many(task(next(_NEXT)) for _ in range(n))
            for w in workers:
                w.go()
            seconds = wait_length(client.redis, SUMMARY, n, timeout=max(60.0, n / 20))
        client.redis.flushdb()
    if seconds is None:
        raise RuntimeError(f"{mode} x{replicas}: {n} summaries did not appear in time")
    return n / seconds


def latencies(client: Any, count: int, warmup: int = 2) -> list[float]:
    """Seconds from submit to result, one task in flight at a time."""
    out = []
    for i in range(warmup + count):
        start = time.perf_counter()
        sent = client.submit(task(next(_NEXT)))
        client.wait(sent.trace, timeout=30.0, since=sent.entry_id)
        if i >= warmup:
            out.append(time.perf_counter() - start)
    return out


# -- Celery, the peer ---------------------------------------------------------------


def celery_app(url: str) -> Any:
    """A Celery app on the benchmark's server (broker db 1, results db 2)."""
    from celery import Celery

    base = url.rsplit("/", 1)[0]
    app = Celery("bench_chord", broker=f"{base}/1", backend=f"{base}/2")
    app.conf.update(
        worker_redirect_stdouts=False,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=4,
        result_expires=600,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="bench.lane")  # type: ignore[untyped-decorator]
    def lane(payload: dict[str, Any], lens: str) -> dict[str, Any]:
        time.sleep(SLEEP)
        return {**payload, "lens": lens}

    @app.task(name="bench.merge")  # type: ignore[untyped-decorator]
    def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"parts": {p["lens"]: p for p in parts}, "missing": []}

    return app


def celery_latencies(url: str, count: int, warmup: int = 2) -> list[float]:
    from celery import chord

    app = celery_app(url)
    lane, merge = app.tasks["bench.lane"], app.tasks["bench.merge"]
    child = Child("bench.fanout", ["celery-worker", "--url", url])
    out = []
    try:
        child.wait_ready()
        for i in range(warmup + count):
            start = time.perf_counter()
            result = chord(lane.s(task(i), x) for x in LANES)(merge.s())
            result.get(timeout=30)
            if i >= warmup:
                out.append(time.perf_counter() - start)
    finally:
        child.stop()
        app.close()
    return out


def _celery_worker(url: str) -> None:
    import warnings

    from celery.exceptions import SecurityWarning
    from celery.signals import worker_ready

    warnings.simplefilter("ignore", SecurityWarning)  # root in a container
    app = celery_app(url)

    @worker_ready.connect  # type: ignore[untyped-decorator]
    def ready(**_: Any) -> None:
        print("READY", flush=True)

    app.worker_main(
        [
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
    )


# -- the benchmark ------------------------------------------------------------------


def run(mode: Mode = "full", baseline: str | None = None) -> Report:
    """Everything above; with ``baseline`` (a folder holding an older ``meshc``), the
    no-op latency and throughput of that version too, measured alternately with ours."""
    size = SIZES[mode]
    started = time.perf_counter()
    ab: dict[str, list[Any]] = {"light": [], "rate": [], "base_light": [], "base_rate": []}
    with server() as srv:
        url = srv.url
        slow = _light(url, "sleep", size["slow"], warmup=2)
        sequential = [_sequential() for _ in range(size["seq"])]
        chord = celery_latencies(url, size["celery"])
        rate = throughput(url, "noop", size["tasks"])
        lights: tuple[list[list[float]], list[list[float]]] = ([], [])
        for rnd in range(size["rounds"]):  # alternating, so a busy spell hits both kinds
            for kind in (0, 1) if rnd % 2 == 0 else (1, 0):
                xs = _light(url, "noop", size["light"], warmup=20, async_lanes=kind == 1)
                lights[kind].append(xs)
        for rep in range(size["ab"] if baseline else 0):
            for tree in (None, baseline) if rep % 2 else (baseline, None):
                prefix = "base_" if tree else ""
                ab[prefix + "light"].append(_light(url, "noop", size["light"], 20, meshc=tree))
                ab[prefix + "rate"].append(throughput(url, "noop", size["tasks"], meshc=tree))
    report = _report(size, slow, sequential, chord, lights, rate)
    if baseline:
        _add_ab(report, baseline, ab)
    report.seconds = time.perf_counter() - started
    return report


def _add_ab(report: Report, baseline: str, ab: dict[str, list[Any]]) -> None:
    ms = 1000.0
    table = Table(
        f"3d. No-op mesh, this tree against --baseline {baseline} (alternating runs)",
        ["tree", "runs", "p50 ms (median)", "p99 ms (median)", "tasks/s (median)"],
    )
    for name, key in (("this tree", ""), ("baseline", "base_")):
        runs = ab[key + "light"]
        table.rows.append([
            name,
            len(runs),
            median([percentile(xs, 50) * ms for xs in runs]),
            median([percentile(xs, 99) * ms for xs in runs]),
            median(ab[key + "rate"]),
        ])  # fmt: skip
    report.tables.append(table)
    report.params["baseline"] = baseline
    report.params["ab"] = {
        k: [round(percentile(v, 50) * ms, 3) if isinstance(v, list) else round(v) for v in vs]
        for k, vs in ab.items()
    }


def _light(
    url: str,
    mode: str,
    count: int,
    warmup: int,
    async_lanes: bool = False,
    meshc: str | None = None,
) -> list[float]:
    """Latencies of ``count`` tasks, one in flight at a time, through a fresh mesh."""
    from meshc.ops.client import MeshClient

    mesh = review_mesh(mode)
    workers_ = mesh_workers(url, mode, async_lanes=async_lanes, meshc=meshc)
    with workers_ as workers, MeshClient(mesh, url) as c:
        for w in workers:
            w.go()
        return latencies(c, count, warmup=warmup)


def _sequential() -> float:
    task_ = ReviewTask.model_validate(task(0))
    start = time.perf_counter()
    for lane in LANES:
        lane_sleep(task_, argparse.Namespace(agent=lane))
    return time.perf_counter() - start


def _report(
    size: dict[str, int],
    slow: list[float],
    sequential: list[float],
    chord: list[float],
    lights: tuple[list[list[float]], list[list[float]]],
    rate: float,
) -> Report:
    ms = 1000.0
    lat = Table(
        "3a. Fan-out latency: 4 lanes sleeping 200 ms, one task at a time",
        ["system", "tasks", "p50 ms", "p90 ms", "max ms", "p50 / slowest lane"],
    )

    def row(name: str, xs: Sequence[float]) -> list[Any]:
        return [
            name,
            len(xs),
            percentile(xs, 50) * ms,
            percentile(xs, 90) * ms,
            max(xs) * ms,
            percentile(xs, 50) / SLEEP,
        ]

    lat.rows.append(row("meshc mesh (6 worker processes)", slow))
    lat.rows.append(row("Celery chord (threads x4) + merge", chord))
    lat.rows.append(row("sequential: the 4 handlers in turn", sequential))
    light_t = Table(
        "3b. No-op lanes: three-hop latency at light load (one task in flight)",
        ["lane handlers", "runs x tasks", "p50 ms", "p90 ms", "p99 ms", "max ms"],
    )
    kinds = ("plain def (run in the thread pool)", "async def")
    for name, runs in zip(kinds, lights, strict=True):
        each = [[percentile(xs, q) * ms for q in (50, 90, 99)] for xs in runs]
        quantiles = [median([e[i] for e in each]) for i in range(3)]
        worst = max(max(xs) for xs in runs) * ms
        light_t.rows.append([name, f"{len(runs)} x {len(runs[0])}", *quantiles, worst])
    rate_t = Table(
        "3c. No-op lanes: mesh throughput",
        ["tasks preloaded", "tasks/s", "stream entries written/s (10 per task)"],
    )
    rate_t.rows.append([size["tasks"], rate, rate * 10])
    p50 = percentile(slow, 50)
    checks = [
        Check("fan-out p50 / slowest lane (200 ms)", p50 / SLEEP, "<=", TARGET_SLOW),
        Check("fan-out p50: meshc / Celery chord", p50 / percentile(chord, 50), "<=", 1.0),
        Check("fan-out p50: meshc / sequential", p50 / median(sequential), "<=", 1.0),
        Check("no-op three-hop p50", light_t.rows[0][2], "<=", TARGET_P50_MS, "ms"),
        Check("no-op three-hop p99", light_t.rows[0][4], "<=", TARGET_P99_MS, "ms"),
    ]
    notes = [
        "workers run as subprocesses (one per agent replica), the caller is MeshClient",
        "3b: quantiles are medians over the runs (plain and async runs alternate), max is "
        "the worst of all",
        f"1-minute load average at the end: {os.getloadavg()[0]:.2f}",
    ]
    params: dict[str, Any] = {**size, "lane_sleep_s": SLEEP, "lanes": list(LANES)}
    params["raw_ms"] = {
        "meshc": [round(x * ms, 2) for x in slow],
        "celery": [round(x * ms, 2) for x in chord],
        "light_p50_p99_per_run": [
            [[round(percentile(xs, q) * ms, 3) for q in (50, 99)] for xs in runs] for runs in lights
        ],
    }
    return Report("fanout", [lat, light_t, rate_t], checks, notes, params)


# -- children -----------------------------------------------------------------------


def _as_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(payload: Any, ctx: Any) -> Any:
        return fn(payload, ctx)

    return handler


def _worker(args: argparse.Namespace) -> None:
    use_meshc_from(args.meshc)
    from bench.common import run_agent_of_tree

    run_agent = run_agent_of_tree()

    mesh = review_mesh(args.mode, args.replicas, args.concurrency)
    handler = HANDLERS[args.mode] if args.agent in LANES else None
    if handler is not None and args.async_lanes:
        handler = _as_async(handler)
    child_wait_go()
    raise SystemExit(run_agent(mesh, args.agent, handler, redis_url=args.url))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        p = argparse.ArgumentParser(prog="python -m bench.fanout worker")
        p.add_argument("agent")
        p.add_argument("--url", required=True)
        p.add_argument("--mode", choices=sorted(HANDLERS), required=True)
        p.add_argument("--replicas", type=int, default=1)
        p.add_argument("--concurrency", type=int, default=1)
        p.add_argument("--async-lanes", action="store_true", help="lanes as async def")
        p.add_argument("--meshc", help="import meshc from this folder (a baseline tree)")
        _worker(p.parse_args(argv[1:]))
        return
    if argv[:1] == ["celery-worker"]:
        p = argparse.ArgumentParser(prog="python -m bench.fanout celery-worker")
        p.add_argument("--url", required=True)
        _celery_worker(p.parse_args(argv[1:]).url)
        return
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    add_mode_args(parser)
    add_baseline_arg(parser)
    args = parser.parse_args(argv)
    emit(run(mode_of(args), args.baseline), args.json)


if __name__ == "__main__":
    main()
