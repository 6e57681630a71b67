"""Benchmark 7: slow, LLM-shaped handlers: how many calls a worker keeps in flight.

Handlers in production are model calls: tens of milliseconds to tens of seconds,
heavy-tailed, waiting on I/O. Here a handler waits like one, deterministically by the
message number ``n`` its payload carries: 40 ms for nine messages in ten, 800 ms for
the tenth (``n % 10 == 9``), 116 ms on average. A consumer with ``C`` calls in flight
can at best do ``C / 0.116 s`` calls per second: the *ideal*.

One specialist lane: N entries in meshc's wire format (``data`` plus the ``trace``,
``parent``, ``agent`` and ``attempt`` header fields) are preloaded into a fresh input
stream per contestant; each contestant runs in its own process and is timed from GO
until its output stream holds N entries (``bench.common``). N is sized per
concurrency so that the ideal takes 10 s (``--quick``: 3 s), so the last slow calls
(the tail a user waits for at the end of a backlog) weigh 5% (15%) of a run; the
report states what a consumer without any overhead would take, tail included.
Contestants (``bench/slow_consumers.py``), at each concurrency C in 32, 256 and 1,024:

* ``reference``: a hand-written asyncio consumer: a semaphore of C, XREADGROUP for as
  many entries as there are free slots, a task per message that waits its latency and
  then commits with one MULTI of XADD (the output, with the header fields) and XACK;
* ``meshc-async``: meshc's Worker (``run_agent`` on an in-process ``MeshSpec``) with an
  ``async def`` handler (``asyncio.sleep``), ``Policy(concurrency=C)``;
* ``meshc-plain``: the same with a plain handler (``time.sleep``), at C = 32 only;
* ``faststream``: FastStream's Redis stream subscriber (consumer group, ack after the
  handler, ``max_workers=C``, reads of at most C entries) feeding its publisher.

Every contestant is checked for exactly-once delivery after its run: N outputs, one
per input (by ``parent`` entry id; FastStream's by the correlation id its replies
carry) and every message number present. Peak RSS is sampled every 20 ms while the
consumer runs; CPU is user + system seconds from GO to the N-th output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

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
    emit,
    mode_of,
    preload,
    server,
    wait_length,
)

FAST_S, SLOW_S, EVERY = 0.040, 0.800, 10  # 40 ms, but 800 ms for every tenth message
MEAN_S = ((EVERY - 1) * FAST_S + SLOW_S) / EVERY  # 0.116 s
IDEAL_SECONDS: dict[Mode, float] = {"smoke": 0.25, "quick": 3.0, "full": 10.0}
CONCURRENCY = (32, 256, 1024)
PLAIN_AT = 32  # a thread per call in flight: one row is enough to show its cost
TARGET_ASYNC = 0.90
TARGET_PLAIN = 0.85
TARGET_RSS_MB = 120.0
RSS_AT = 1024
MB = 1_000_000
TEXT = "x" * 60  # with the message number, a payload of about 80 bytes
NAMES = {
    "reference": "reference: asyncio, semaphore, MULTI(XADD, XACK) per message",
    "meshc-async": "meshc Worker, async def handler",
    "meshc-plain": "meshc Worker, plain handler (thread pool)",
    "meshc-base": "meshc Worker, async def handler, --baseline tree",
    "faststream": "FastStream 0.7 stream subscriber -> publisher, max_workers",
}


class Msg(BaseModel):
    n: int
    text: str


def latency(n: int) -> float:
    """The wait of message ``n``: the same for every contestant and every run."""
    return SLOW_S if n % EVERY == EVERY - 1 else FAST_S


def messages(concurrency: int, seconds: float) -> int:
    """N for an ideal run of at least ``seconds``, a multiple of 10 (exactly 10% slow)."""
    return math.ceil(concurrency * seconds / MEAN_S / EVERY) * EVERY


def best_seconds(n: int, concurrency: int) -> float:
    """The makespan of a consumer without overhead: ``concurrency`` slots, each taking
    the next message in stream order the moment it is free. It exceeds the ideal by
    the tail: the last slow calls finish after everything else."""
    slots = [0.0] * concurrency
    end = 0.0
    for i in range(n):
        done = heapq.heappop(slots) + latency(i)
        end = max(end, done)
        heapq.heappush(slots, done)
    return end


# -- the parent ---------------------------------------------------------------------


@dataclass
class Run:
    """One contestant's run and what its output stream held after it."""

    kind: str
    concurrency: int
    messages: int
    seconds: float
    cpu: float
    peak_rss: float
    outputs: int = 0
    distinct: int = 0  # outputs with different parents: one per input when exactly once
    missing: int = 0  # message numbers of the input with no output
    failure: str = ""  # why it has no time: it died, or it was too slow to wait for

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def ideal_rate(self) -> float:
        return self.concurrency / MEAN_S

    @property
    def vs_ideal(self) -> float:
        return self.rate / self.ideal_rate


def contestants(baseline: str | None, mode: Mode = "full") -> list[tuple[str, int]]:
    """(kind, concurrency) in running order: at each concurrency the reference first,
    so the ratio to it compares runs made back to back. The smoke run (a test of the
    harness, in CI) runs FastStream at the lowest concurrency only: above it the peer
    needs minutes for even a tiny run on a busy machine."""
    out: list[tuple[str, int]] = []
    for c in CONCURRENCY:
        out += [("reference", c), ("meshc-async", c)]
        out += [("meshc-plain", c)] if c == PLAIN_AT else []
        out += [("meshc-base", c)] if baseline else []
        out += [("faststream", c)] if mode != "smoke" or c == CONCURRENCY[0] else []
    return out


def run(mode: Mode = "full", baseline: str | None = None) -> Report:
    """Every contestant once; with ``baseline`` (a folder holding another ``meshc``),
    also that tree's Worker with the async handler, at each concurrency."""
    started = time.perf_counter()
    runs: list[Run] = []
    with server() as srv, contextlib.closing(srv.client()) as r:
        for kind, c in contestants(baseline, mode):
            n = messages(c, IDEAL_SECONDS[mode])
            runs.append(_measure(srv.url, r, kind, c, n, baseline))
    report = _report(runs, mode, baseline)
    report.seconds = time.perf_counter() - started
    return report


def _measure(url: str, r: redis.Redis, kind: str, c: int, n: int, baseline: str | None) -> Run:
    group = f"{kind.replace('-', '_')}_{c}"
    inp, out = f"slow.in.{group}", f"slow.out.{group}"
    if kind == "faststream":
        preload(r, inp, faststream_inputs(n).__getitem__, n)
    else:
        preload(r, inp, entry_fields, n)
    if not kind.startswith("meshc"):  # the Worker creates its group; from 0 here too
        r.xgroup_create(inp, group, id="0")
    args = [kind, "--url", url, "--group", group, "--in", inp, "--out", out]
    args += ["--concurrency", str(c)] + (["--meshc", str(baseline)] if kind == "meshc-base" else [])
    child = Child("bench.slow_consumers", args)
    try:
        child.wait_ready()
        cpu = child.cpu_seconds()
        with sampled_peak(child.rss) as peak:
            child.go()
            ideal = n * MEAN_S / c
            timeout = max(60.0, 60 * ideal)
            seconds = wait_length(r, out, n, timeout, poll=0.005, alive=child.alive)
            died = not child.alive()
            cpu = float("nan") if died else child.cpu_seconds() - cpu
    finally:
        code = child.stop()
    result = Run(kind, c, n, float("nan") if seconds is None else seconds, cpu, peak[0] / MB)
    if seconds is None:  # reported, and the other contestants still run
        why = f"its process exited with {code}" if died else f"not within {timeout:.0f} s"
        result.failure = f"{NAMES[kind]} at {c}: {n} outputs did not appear: {why}"
    _count(r, out, n, kind == "faststream", result)
    r.delete(inp, out)
    return result


@contextlib.contextmanager
def sampled_peak(read: Callable[[], int], every: float = 0.02) -> Iterator[list[int]]:
    """The largest of ``read()`` sampled every ``every`` s in a thread while the block
    runs (in ``[0]`` of the list yielded): a reading at the end would miss the peak,
    which comes while the most calls are in flight."""
    peak = [read()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            with contextlib.suppress(Exception):  # the child may be exiting
                peak[0] = max(peak[0], read())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _count(r: redis.Redis, key: str, n: int, faststream: bool, into: Run) -> None:
    """Fill in outputs, distinct parents and missing message numbers from ``key``."""
    parents: set[bytes | str] = set()
    seen: set[int] = set()
    outputs = 0
    start = b"-"
    while batch := r.xrange(key, start, b"+", count=10_000):
        for _eid, fields in batch:
            outputs += 1
            parent, data = _parent_and_data(fields, faststream)
            parents.add(parent)
            with contextlib.suppress(Exception):  # a malformed output counts as missing
                seen.add(int(orjson.loads(data)["n"]))
        start = b"(" + batch[-1][0]
    into.outputs, into.distinct = outputs, len(parents)
    into.missing = len(set(range(n)) - seen)


def _parent_and_data(fields: dict[bytes, bytes], faststream: bool) -> tuple[bytes | str, bytes]:
    if not faststream:
        return fields.get(b"parent", b""), fields.get(b"data", b"")
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    data, headers = BinaryMessageFormatV1.parse(fields.get(b"__data__", b""))
    return str(headers.get("correlation_id", "")), data


def entry_fields(n: int) -> dict[bytes, bytes]:
    """Entry ``n`` of the input, as a mid-mesh entry: its payload and meshc's header."""
    return {
        b"data": orjson.dumps({"n": n, "text": TEXT}),
        b"trace": uuid.uuid4().hex.encode(),
        b"parent": b"1700000000000-0",
        b"agent": b"producer",
        b"attempt": b"1",
    }


def faststream_inputs(n: int) -> list[dict[bytes, bytes]]:
    """The same payloads as FastStream's own publisher writes them (binary format v1),
    each with its own correlation id, which FastStream copies onto the reply."""
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    async def encode(i: int) -> dict[bytes, bytes]:
        data = await BinaryMessageFormatV1.encode(
            message={"n": i, "text": TEXT}, reply_to=None, headers=None, correlation_id=f"m{i}"
        )
        return {b"__data__": data}

    async def every() -> list[dict[bytes, bytes]]:
        return [await encode(i) for i in range(n)]

    return asyncio.run(every())


def _report(runs: list[Run], mode: Mode, baseline: str | None) -> Report:
    seconds = IDEAL_SECONDS[mode]
    ideal = {c: messages(c, seconds) * MEAN_S / c for c in CONCURRENCY}
    best = {c: best_seconds(messages(c, seconds), c) for c in CONCURRENCY}
    cap = min(ideal[c] / best[c] for c in CONCURRENCY)
    tail = max(best[c] - ideal[c] for c in CONCURRENCY)
    notes = [
        "ideal: concurrency / 116 ms; vs reference: calls/s over the reference's at the same "
        "concurrency, run just before",
        f"no consumer can beat {cap:.2f} of ideal here: with no overhead at all, C slots "
        f"taking messages in stream order finish up to {tail:.2f} s after the ideal (the "
        "last 800 ms calls)",
        "peak RSS sampled every 20 ms while the consumer runs; MB = 10^6 bytes",
        *(f"FAILED: {x.failure}" for x in runs if x.failure),
    ]
    params = {
        "mode": mode,
        "latency_s": {"fast": FAST_S, "slow": SLOW_S, "slow_every": EVERY, "mean": MEAN_S},
        "ideal_seconds": seconds,
        "best_seconds": {str(c): round(s, 3) for c, s in best.items()},
        "runs": [asdict(x) for x in runs],
        **({"baseline": baseline} if baseline else {}),
    }
    tables = [_speed_table(runs), _delivery_table(runs)]
    return Report("slow", tables, _checks(runs, cap), notes, params)


def _speed_table(runs: list[Run]) -> Table:
    reference = {x.concurrency: x.rate for x in runs if x.kind == "reference"}
    table = Table(
        "7. Slow handlers: 40 ms (90%) or 800 ms (10%) per call, mean 116 ms",
        ["contestant", "concurrency", "messages", "seconds", "ideal s", "calls/s",
         "ideal calls/s", "vs ideal", "vs reference", "peak RSS MB", "CPU s"],
    )  # fmt: skip
    for x in runs:
        table.rows.append([
            NAMES[x.kind], x.concurrency, x.messages, x.seconds, x.messages / x.ideal_rate,
            x.rate, x.ideal_rate, x.vs_ideal, x.rate / reference[x.concurrency], x.peak_rss,
            x.cpu,
        ])  # fmt: skip
    return table


def _delivery_table(runs: list[Run]) -> Table:
    table = Table(
        "7b. Delivery: outputs after each run (exactly once: outputs = distinct = messages)",
        ["contestant", "concurrency", "messages", "outputs", "distinct inputs", "missing"],
    )
    for x in runs:
        table.rows.append(
            [NAMES[x.kind], x.concurrency, x.messages, x.outputs, x.distinct, x.missing]
        )
    return table


def _checks(runs: list[Run], cap: float) -> list[Check]:
    def of(kind: str, c: int) -> Run:
        return next(x for x in runs if x.kind == kind and x.concurrency == c)

    limit = f" (at most {cap:.2f} here)"
    checks = [
        Check(f"slow: meshc async at {c} / ideal{limit}", of("meshc-async", c).vs_ideal, ">=",
              TARGET_ASYNC)
        for c in CONCURRENCY
    ]  # fmt: skip
    plain = of("meshc-plain", PLAIN_AT).vs_ideal
    checks.append(
        Check(f"slow: meshc plain at {PLAIN_AT} / ideal{limit}", plain, ">=", TARGET_PLAIN)
    )
    rss = of("meshc-async", RSS_AT).peak_rss
    checks.append(Check(f"slow: meshc worker RSS, {RSS_AT:,} in flight", rss, "<=",
                        TARGET_RSS_MB, "MB"))  # fmt: skip
    return checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow", description=__doc__)
    add_mode_args(parser)
    add_baseline_arg(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    emit(run(mode_of(args), args.baseline), args.json)


if __name__ == "__main__":
    main()
