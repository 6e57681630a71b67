"""Benchmarks 1 and 2: one pass-through hop, meshc's Worker against hand-written loops
and against FastStream.

The producer preloads N entries of a 100-byte JSON payload (with meshc's header
fields, as an entry inside a mesh carries) into ``hop.in``; each contestant then runs
in its own process with a fresh consumer group on that stream and its own output
stream, and is timed from GO until its output holds N entries. Contestants:

* ``raw``: redis-py (hiredis) reading 200 at a time with XREADGROUP and committing
  each batch's XADDs (the ``data`` field only) and one XACK in one MULTI/EXEC: the
  baseline of the target.
* ``naive``: one message at a time, separate XADD and XACK.
* ``script``: like ``raw`` but each batch committed by one Lua script (XACK each entry,
  XADD its output with header fields only if the XACK counted): the shape meshc uses,
  without meshc around it, so the gap between it and the Worker is meshc's own cost.
* ``worker``: meshc's Worker with a plain (thread-pool) handler returning its
  validated payload, batch 200: input validation, output serialisation, the header
  fields and the exactly-once commit script all on.
* ``worker-async``: the same with an ``async def`` handler (no thread hop).
* ``worker-metrics``: ``worker`` with Prometheus metrics on (the supervisor's
  ``--metrics-port`` does this: ``MESHC_METRICS_DIR`` names the multi-process folder).
* ``worker-traced``: ``worker`` with OpenTelemetry tracing on, every call a span,
  exported over OTLP/HTTP to a sink in the parent that discards them.
  ``worker`` itself has both off, so the three side by side show what each costs when
  on; what the hooks cost when off shows with ``--baseline`` (a tree without them).
* ``faststream``: FastStream's Redis stream subscriber (consumer group, ack after
  the handler) feeding its publisher; entries in FastStream's own binary format.

Repetitions alternate the order of the contestants; each ratio is the median of the
per-repetition ratios, so a slow spell of this shared machine hits both sides of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import redis
from pydantic import BaseModel

from bench.common import (
    Check,
    Child,
    Mode,
    Report,
    Table,
    add_baseline_arg,
    add_mode_args,
    child_wait_go,
    emit,
    machine,
    median,
    mode_of,
    preload,
    server,
    use_meshc_from,
    wait_length,
)

IN = "hop.in"
FS_IN = "hop.in.fs"
BATCH = 200
PAYLOAD_BYTES = 100
SIZES: dict[Mode, dict[str, int]] = {
    "smoke": {"n": 2_000, "small": 200, "reps": 1},
    "quick": {"n": 40_000, "small": 3_000, "reps": 3},
    "full": {"n": 100_000, "small": 6_000, "reps": 5},
}
FAST = ("raw", "script", "worker", "worker-async", "worker-metrics", "worker-traced")
BASELINE = "worker-baseline"  # the Worker of another meshc tree (--baseline)
SLOW = ("naive", "faststream")
TARGET_RAW = 0.90
TARGET_PEER = 10.0


class Msg(BaseModel):
    n: int
    text: str


def payload() -> bytes:
    """A JSON ``Msg`` of exactly ``PAYLOAD_BYTES`` bytes."""
    empty = orjson.dumps({"n": 1234567, "text": ""})
    return orjson.dumps({"n": 1234567, "text": "x" * (PAYLOAD_BYTES - len(empty))})


def entry_fields() -> dict[bytes, bytes]:
    """A mid-mesh entry: payload plus meshc's header."""
    return {
        b"data": payload(),
        b"trace": uuid.uuid4().hex.encode(),
        b"parent": b"1700000000000-0",
        b"agent": b"producer",
        b"attempt": b"1",
    }


def faststream_fields() -> dict[bytes, bytes]:
    """The same payload as FastStream's own publisher writes it (binary format v1)."""
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    data = asyncio.run(
        BinaryMessageFormatV1.encode(
            message=orjson.loads(payload()),
            reply_to=None,
            headers=None,
            correlation_id=str(uuid.uuid4()),
        )
    )
    return {b"__data__": data}


# -- the parent ---------------------------------------------------------------------


def run(mode: Mode = "full", baseline: str | None = None) -> Report:
    """All contestants; with ``baseline`` (a folder holding an older ``meshc``), also
    the Worker of that version, so a runtime change is measured against it in one run."""
    size = SIZES[mode]
    started = time.perf_counter()
    fast = FAST + (BASELINE,) if baseline else FAST
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in fast + SLOW}
    load = [os.getloadavg()[0]]
    with server() as srv, contextlib.closing(srv.client()) as r, span_sink() as sink:
        load_rate = preload(r, IN, entry_fields(), size["n"])
        preload(r, FS_IN, faststream_fields(), size["small"])
        for rep in range(size["reps"]):
            order = fast + SLOW if rep % 2 == 0 else SLOW[::-1] + fast[::-1]
            for variant in order:
                n = size["n"] if variant in fast else size["small"]
                runs[variant].append(_measure(srv.url, r, variant, n, rep, baseline, sink))
        host = machine(srv)
    load.append(os.getloadavg()[0])
    report = _report(runs, size, load_rate, host, load, baseline)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def span_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that accepts span exports and discards them; its URL."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def telemetry_env(variant: str, sink: str) -> Iterator[dict[str, str]]:
    """The child's environment: metrics or tracing on for their contestants."""
    if variant == "worker-metrics":
        folder = tempfile.mkdtemp(prefix="bench-metrics-")
        try:
            yield {"MESHC_METRICS_DIR": folder}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    elif variant == "worker-traced":
        yield {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_SERVICE_NAME": "bench-hop"}
    else:
        yield {}


def _measure(
    url: str,
    r: redis.Redis,
    variant: str,
    n: int,
    rep: int,
    baseline: str | None = None,
    sink: str = "",
) -> tuple[float, float]:
    """(messages/s, consumer CPU µs per message) of one contestant draining ``n`` entries."""
    with telemetry_env(variant, sink) as env:
        return _drain(url, r, variant, n, rep, baseline, env)


def _drain(
    url: str,
    r: redis.Redis,
    variant: str,
    n: int,
    rep: int,
    baseline: str | None,
    env: dict[str, str],
) -> tuple[float, float]:
    group = f"{variant.replace('-', '_')}{rep}"
    out = f"hop.out.{group}"
    source = FS_IN if variant == "faststream" else IN
    if not variant.startswith("worker"):
        r.xgroup_create(source, group, id="0", mkstream=True)
    args = ["child", variant, "--url", url, "--group", group, "--out", out]
    if variant == BASELINE:
        args[1:2] = ["worker", "--meshc", str(baseline)]
    child = Child("bench.hop", args, env=env)
    try:
        child.wait_ready()
        cpu = child.cpu_seconds()
        child.go()
        seconds = wait_length(r, out, n, timeout=max(60.0, n / 500))
        cpu = child.cpu_seconds() - cpu
    finally:
        child.stop()
    r.delete(out)
    if seconds is None:
        raise RuntimeError(f"{variant}: {n} outputs did not appear in time")
    return n / seconds, cpu / n * 1e6


def paired(runs: dict[str, list[tuple[float, float]]], a: str, b: str) -> float:
    """Median over repetitions of rate(a) / rate(b), each pair measured back to back."""
    return median([x[0] / y[0] for x, y in zip(runs[a], runs[b], strict=True)])


NAMES = {
    "raw": "raw loop: XREADGROUP 200 + MULTI(XADDs, XACK)",
    "script": "raw loop: XREADGROUP 200 + one Lua commit",
    "worker": "meshc Worker, plain handler",
    "worker-async": "meshc Worker, async handler",
    "worker-metrics": "meshc Worker, plain handler, metrics on",
    "worker-traced": "meshc Worker, plain handler, every call traced (OTLP)",
    BASELINE: "meshc Worker, plain handler, --baseline tree",
    "naive": "naive loop: 1 message, XADD then XACK",
    "faststream": "FastStream 0.7 stream subscriber -> publisher",
}


def _report(
    runs: dict[str, list[tuple[float, float]]],
    size: dict[str, int],
    load_rate: float,
    host: dict[str, Any],
    load: list[float],
    baseline: str | None = None,
) -> Report:
    hop = Table(
        "1. Hop throughput (one pass-through agent, 100-byte payloads)",
        [
            "contestant",
            "messages",
            "msg/s (median)",
            "min",
            "max",
            "vs raw MULTI loop",
            "consumer CPU µs/msg",
        ],
    )
    for v in (
        "raw",
        "script",
        "worker",
        "worker-async",
        "worker-metrics",
        "worker-traced",
        "naive",
    ) + (  # fmt: skip
        (BASELINE,) if baseline else ()
    ):
        n = size["small"] if v in SLOW else size["n"]
        rates = [rate for rate, _ in runs[v]]
        cpu = median([c for _, c in runs[v]])
        ratio = paired(runs, v, "raw")
        hop.rows.append([NAMES[v], n, median(rates), min(rates), max(rates), ratio, cpu])
    peer = Table(
        "2. Against a peer: the same hop with FastStream",
        ["contestant", "messages", "msg/s (median)", "meshc Worker / it", "consumer CPU µs/msg"],
    )
    for v in ("faststream", "worker"):
        n = size["n"] if v in FAST else size["small"]
        rate = median([rate for rate, _ in runs[v]])
        cpu = median([c for _, c in runs[v]])
        peer.rows.append([NAMES[v], n, rate, paired(runs, "worker", v), cpu])
    checks = [
        Check(
            "hop: meshc Worker / raw MULTI loop", paired(runs, "worker", "raw"), ">=", TARGET_RAW
        ),
        Check(
            "peer: meshc Worker / FastStream",
            paired(runs, "worker", "faststream"),
            ">=",
            TARGET_PEER,
        ),
    ]
    notes = [
        "ratios are medians of per-repetition ratios (contestants run back to back)",
        f"preload rate (pipelined XADD, 1000 per round trip): {load_rate:,.0f}/s",
        f"1-minute load average before/after: {load[0]:.2f}/{load[1]:.2f}",
        f"metrics on / off: throughput x{paired(runs, 'worker-metrics', 'worker'):.3f}, "
        f"CPU per message x{_cpu_ratio(runs, 'worker-metrics', 'worker'):.3f}; traced / off: "
        f"x{paired(runs, 'worker-traced', 'worker'):.3f}, "
        f"CPU x{_cpu_ratio(runs, 'worker-traced', 'worker'):.3f}",
    ]
    params: dict[str, Any] = {**size, "batch": BATCH, "payload_bytes": PAYLOAD_BYTES}
    params["machine"] = host
    params["runs"] = {v: [[round(x), round(c, 2)] for x, c in rs] for v, rs in runs.items()}
    if baseline:
        params["baseline"] = baseline
        cpu_ratios = [a[1] / b[1] for a, b in zip(runs["worker"], runs[BASELINE], strict=True)]
        notes.append(
            f"A/B against {baseline}: Worker throughput x{paired(runs, 'worker', BASELINE):.3f}, "
            f"its CPU per message x{median(cpu_ratios):.3f} (medians of per-repetition ratios)"
        )
    return Report("hop", [hop, peer], checks, notes, params)


def _cpu_ratio(runs: dict[str, list[tuple[float, float]]], a: str, b: str) -> float:
    return median([x[1] / y[1] for x, y in zip(runs[a], runs[b], strict=True)])


# -- the children -------------------------------------------------------------------


def _raw(url: str, group: str, out: str) -> None:
    r = redis.Redis.from_url(url)
    streams: dict[Any, Any] = {IN: ">"}
    child_wait_go()
    while True:
        reply: Any = r.xreadgroup(group, "c", streams, count=BATCH, block=200)
        for _key, entries in reply or ():
            pipe = r.pipeline(transaction=True)
            for _eid, fields in entries:
                pipe.xadd(out, {b"data": fields[b"data"]})
            pipe.xack(IN, group, *[eid for eid, _ in entries])
            pipe.execute()


def _naive(url: str, group: str, out: str) -> None:
    r = redis.Redis.from_url(url)
    streams: dict[Any, Any] = {IN: ">"}
    child_wait_go()
    while True:
        reply: Any = r.xreadgroup(group, "c", streams, count=1, block=200)
        for _key, entries in reply or ():
            for eid, fields in entries:
                r.xadd(out, {b"data": fields[b"data"]})
                r.xack(IN, group, eid)


# ARGV[1] group, then (trace id data) per entry.
SCRIPT = """
local n = 0
for i = 2, #ARGV, 3 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i + 1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[i + 2], 'trace', ARGV[i],
      'parent', ARGV[i + 1], 'agent', 'hop', 'attempt', '1')
    n = n + 1
  end
end
return n
"""


def _script(url: str, group: str, out: str) -> None:
    r = redis.Redis.from_url(url)
    commit = r.register_script(SCRIPT)
    streams: dict[Any, Any] = {IN: ">"}
    child_wait_go()
    while True:
        reply: Any = r.xreadgroup(group, "c", streams, count=BATCH, block=200)
        for _key, entries in reply or ():
            args: list[bytes] = [group.encode()]
            for eid, fields in entries:
                args += (fields[b"trace"], eid, fields[b"data"])
            commit(keys=[IN, out], args=args)


def passthrough(payload: Msg, ctx: Any) -> Msg:
    return payload


async def passthrough_async(payload: Msg, ctx: Any) -> Msg:
    return payload


def hop_mesh(agent: str, out: str) -> Any:
    from meshc.runtime.spec import AgentSpec, MeshSpec, Policy, StreamSpec

    spec = AgentSpec(
        agent, "specialist", (IN,), (out,), "bench.hop:passthrough", policy=Policy(batch=BATCH)
    )
    streams = {IN: StreamSpec(IN, Msg), out: StreamSpec(out, Msg)}
    return MeshSpec("bench", 1, streams, {agent: spec})


def _worker(url: str, group: str, out: str, handler: Callable[..., Any], profile: str) -> None:
    from bench.common import run_agent_of_tree

    run_agent = run_agent_of_tree()

    mesh = hop_mesh(group, out)
    child_wait_go()
    if not profile:
        raise SystemExit(run_agent(mesh, group, handler, redis_url=url))
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    code = run_agent(mesh, group, handler, redis_url=url)
    profiler.stop()
    with open(profile, "w") as f:
        f.write(profiler.output_text(unicode=True, color=False, show_all=False))
    raise SystemExit(code)


def _faststream(url: str, group: str, out: str) -> None:
    import logging

    from faststream.redis import RedisBroker, StreamSub

    logging.disable(logging.CRITICAL)
    broker = RedisBroker(url, logger=None)  # type: ignore[arg-type]  # None: no logging

    @broker.subscriber(stream=StreamSub(FS_IN, group=group, consumer="c"))
    @broker.publisher(stream=out)
    async def handle(msg: dict[str, Any]) -> dict[str, Any]:
        return msg

    async def main() -> None:
        await broker.start()
        try:
            await asyncio.Event().wait()
        finally:
            await broker.stop()

    child_wait_go()
    asyncio.run(main())


def child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hop child")
    parser.add_argument("variant", choices=FAST + SLOW)
    parser.add_argument("--url", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile", default="", help="write a pyinstrument profile here")
    parser.add_argument("--meshc", help="import meshc from this folder (a baseline tree)")
    args = parser.parse_args(argv)
    use_meshc_from(args.meshc)
    if args.variant in ("worker", "worker-metrics", "worker-traced"):
        _worker(args.url, args.group, args.out, passthrough, args.profile)
    elif args.variant == "worker-async":
        _worker(args.url, args.group, args.out, passthrough_async, args.profile)
    else:
        {"raw": _raw, "naive": _naive, "script": _script, "faststream": _faststream}[args.variant](
            args.url, args.group, args.out
        )


def profile(path: str, n: int = 100_000, variant: str = "worker") -> float:
    """Drain ``n`` entries through one Worker running under pyinstrument; the profile
    (text) goes to ``path``. The profiler slows the worker about 2x, so the figure
    returned (messages/s) is not comparable with the benchmark's."""
    with server() as srv, contextlib.closing(srv.client()) as r:
        preload(r, IN, entry_fields(), n)
        args = ["child", variant, "--url", srv.url, "--group", "prof", "--out", "prof.out"]
        child = Child("bench.hop", [*args, "--profile", str(Path(path).resolve())])
        try:
            child.wait_ready()
            child.go()
            seconds = wait_length(r, "prof.out", n, timeout=max(60.0, n / 200))
        finally:
            child.stop(timeout=60.0)  # it writes the profile as it exits
    if seconds is None:
        raise RuntimeError("the profiled worker did not drain its input in time")
    return n / seconds


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        child_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.hop", description=__doc__)
    add_mode_args(parser)
    add_baseline_arg(parser)
    parser.add_argument(
        "--profile", metavar="PATH", help="instead: profile the Worker (pyinstrument) into PATH"
    )
    args = parser.parse_args(argv)
    if args.profile:
        rate = profile(args.profile)
        print(f"profile written to {args.profile} ({rate:,.0f} msg/s under the profiler)")
        return
    emit(run(mode_of(args), args.baseline), args.json)


if __name__ == "__main__":
    main()
