"""The consumers of benchmark 7 (``bench.slow``), each run as a child process:
``python -m bench.slow_consumers KIND --url … --group … --in … --out … --concurrency C``.

Each builds everything, connects, prints READY and starts on GO (``bench.common``).
The meshc rows use only the Worker's public entry points (``run_agent`` on
``MeshSpec`` records), so the same file measures whichever worker the tree has.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import child_wait_go, use_meshc_from
from bench.slow import NAMES, Msg, latency

POOL = 64  # the reference's connections


async def llm_call(payload: Msg, ctx: Any) -> Msg:
    """The handler of the async rows: waits like a model call, answers its input."""
    await asyncio.sleep(latency(payload.n))
    return payload


def llm_call_blocking(payload: Msg, ctx: Any) -> Msg:
    """The handler of the plain row: a blocking client's call holds its thread."""
    time.sleep(latency(payload.n))
    return payload


def slow_mesh(agent: str, inp: str, out: str, concurrency: int) -> Any:
    """One specialist from ``inp`` to ``out`` with ``concurrency`` calls in flight."""
    from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec

    policy = Policy(concurrency=concurrency)
    spec = AgentSpec(
        agent, "specialist", (inp,), (out,), "bench.slow_consumers:llm_call", policy=policy
    )
    return MeshSpec("bench", 1, {inp: StreamSpec(inp, Msg), out: StreamSpec(out, Msg)},
                    {agent: spec})  # fmt: skip


def _meshc(args: argparse.Namespace, handler: Callable[..., Any]) -> None:
    use_meshc_from(args.meshc)
    from bench.common import run_agent_of_tree

    run_agent = run_agent_of_tree()

    mesh = slow_mesh(args.group, args.inp, args.out, args.concurrency)
    child_wait_go()
    raise SystemExit(run_agent(mesh, args.group, handler, redis_url=args.url))


async def _reference(url: str, group: str, inp: str, out: str, concurrency: int) -> None:
    """The hand-written consumer: read as many entries as there are free slots, a task
    per message, each committed alone (its output and its XACK in one MULTI)."""
    from redis.asyncio import BlockingConnectionPool, Redis

    # A commit waits for one of 64 connections rather than failing past redis-py's 100;
    # all are opened before READY (at once, so none is reused), as if warmed up.
    r = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=POOL))
    await asyncio.gather(*(r.ping() for _ in range(POOL)))
    child_wait_go()  # blocks the loop, but nothing else runs yet
    free = asyncio.Semaphore(concurrency)
    streams: dict[Any, Any] = {inp: ">"}
    running: set[asyncio.Task[None]] = set()
    agent = group.encode()

    async def handle(eid: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            await asyncio.sleep(latency(orjson.loads(fields[b"data"])["n"]))
            pipe = r.pipeline(transaction=True)
            header = {b"trace": fields[b"trace"], b"parent": eid, b"agent": agent}
            pipe.xadd(out, {b"data": fields[b"data"], **header, b"attempt": b"1"})
            pipe.xack(inp, group, eid)
            await pipe.execute()
        finally:
            free.release()

    while True:
        await free.acquire()
        slots = 1
        while not free.locked():  # every other free slot, without waiting
            await free.acquire()
            slots += 1
        reply: Any = await r.xreadgroup(group, "c", streams, count=slots, block=200)
        entries = [e for _key, batch in reply or () for e in batch]
        for _ in range(slots - len(entries)):
            free.release()
        for eid, fields in entries:
            task = asyncio.create_task(handle(eid, fields))
            running.add(task)  # a reference, so the task is not collected mid-flight
            task.add_done_callback(running.discard)


def _faststream(url: str, group: str, inp: str, out: str, concurrency: int) -> None:
    import logging

    from faststream.redis import RedisBroker, StreamSub

    logging.disable(logging.CRITICAL)
    broker = RedisBroker(url, logger=None)  # type: ignore[arg-type]  # None: no logging
    source = StreamSub(inp, group=group, consumer="c", max_records=concurrency)

    @broker.subscriber(stream=source, max_workers=concurrency)
    @broker.publisher(stream=out)
    async def handle(msg: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(latency(msg["n"]))
        return msg

    async def main() -> None:
        await broker.connect()  # before READY; start() creates the group and reads
        child_wait_go()
        await broker.start()
        try:
            await asyncio.Event().wait()
        finally:
            await broker.stop()

    asyncio.run(main())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_consumers")
    parser.add_argument("kind", choices=sorted(NAMES))
    parser.add_argument("--url", required=True, help="the benchmark's server")
    parser.add_argument("--group", required=True, help="consumer group (meshc: agent name)")
    parser.add_argument("--in", dest="inp", required=True, help="the preloaded input stream")
    parser.add_argument("--out", required=True, help="the output stream")
    parser.add_argument("--concurrency", type=int, required=True, help="calls in flight")
    parser.add_argument("--meshc", help="import meshc from this folder (a baseline tree)")
    args = parser.parse_args(argv)
    if args.kind in ("meshc-async", "meshc-base"):
        _meshc(args, llm_call)
    elif args.kind == "meshc-plain":
        _meshc(args, llm_call_blocking)
    elif args.kind == "faststream":
        _faststream(args.url, args.group, args.inp, args.out, args.concurrency)
    else:
        asyncio.run(_reference(args.url, args.group, args.inp, args.out, args.concurrency))


if __name__ == "__main__":
    main(sys.argv[1:])
