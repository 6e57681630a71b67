"""Benchmark 5: memory of one worker process and of the server per pending message.

Worker: the pass-through agent of ``bench.hop`` (plain handler, batch 200) in its own
process. RSS is read with psutil when it is READY (imports done, worker built), after
a second of idling on an empty stream, and every 10 ms while the parent pushes N
entries through it (peak), then once more after the load.

Server: ``INFO memory`` ``used_memory`` before and after M mid-mesh entries (a
100-byte payload plus meshc's header fields) are added to a stream (backlog not yet
read), and again after a consumer group has read them all without acknowledging them
(each is then also in the group's pending list). Entries are written by a Lua loop
(10,000 per call) so the client's speed does not limit the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any

import redis

from bench.common import (
    Check,
    Child,
    Mode,
    Report,
    Table,
    add_mode_args,
    emit,
    fmt,
    mode_of,
    server,
)
from bench.hop import IN, entry_fields

SIZES: dict[Mode, dict[str, int]] = {
    "smoke": {"load": 5_000, "entries": 5_000},
    "quick": {"load": 50_000, "entries": 200_000},
    "full": {"load": 200_000, "entries": 1_000_000},
}
TARGET_RSS_MB = 80.0
MB = 1_000_000  # SI megabytes, the unit of the target
FILL = """
for _ = 1, tonumber(ARGV[1]) do
  redis.call('XADD', KEYS[1], '*', 'data', ARGV[2], 'trace', ARGV[3], 'parent', ARGV[4],
    'agent', ARGV[5], 'attempt', ARGV[6])
end
return redis.call('XLEN', KEYS[1])
"""
READ_ALL = """
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], 'c', 'COUNT', ARGV[2], 'STREAMS', KEYS[1], '>')
if not r then return 0 end
return #r[1][2]
"""


def run(mode: Mode = "full") -> Report:
    size = SIZES[mode]
    started = time.perf_counter()
    with server() as srv, contextlib.closing(srv.client()) as r:
        rss = _worker_rss(srv.url, r, size["load"])
        r.flushall()
        mem = _server_memory(r, size["entries"])
    report = _report(rss, mem, size)
    report.seconds = time.perf_counter() - started
    return report


def _worker_rss(url: str, r: redis.Redis, n: int) -> dict[str, float]:
    out = "mem.out"
    child = Child("bench.hop", ["child", "worker", "--url", url, "--group", "mem", "--out", out])
    try:
        child.wait_ready()
        ready = child.rss()
        child.go()
        time.sleep(1.0)
        idle = child.rss()
        peak = idle
        fields = entry_fields()
        for first in range(0, n, 1000):
            pipe = r.pipeline(transaction=False)
            for _ in range(min(1000, n - first)):
                pipe.xadd(IN, fields)  # type: ignore[arg-type]
            pipe.execute()
            peak = max(peak, child.rss())
        deadline = time.monotonic() + max(60.0, n / 1000)
        while int(r.xlen(out)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not drain its input in time")
            peak = max(peak, child.rss())
            time.sleep(0.01)
        time.sleep(0.5)
        after = child.rss()
    finally:
        child.stop()
    return {"ready": ready / MB, "idle": idle / MB, "peak": peak / MB, "after": after / MB}


def _server_memory(r: redis.Redis, m: int) -> dict[str, float]:
    f = entry_fields()
    fill = r.register_script(FILL)
    read = r.register_script(READ_ALL)
    key = "mem.backlog"
    before = int(r.info("memory")["used_memory"])
    for first in range(0, m, 10_000):
        count = min(10_000, m - first)
        fill(keys=[key], args=[count, f[b"data"], f[b"trace"], f[b"parent"], f[b"agent"], b"1"])
    backlog = int(r.info("memory")["used_memory"])
    r.xgroup_create(key, "g", id="0")
    read_total = 0
    while read_total < m:
        got = int(read(keys=[key], args=["g", 10_000]))
        if got == 0:
            break
        read_total += got
    pending = int(r.info("memory")["used_memory"])
    assert int(r.xpending(key, "g")["pending"]) == m, "every entry should be pending"
    return {"before": before, "backlog": backlog, "pending": pending, "m": m}


def _report(rss: dict[str, float], mem: dict[str, float], size: dict[str, int]) -> Report:
    worker = Table(
        "5a. Memory of one worker process (pass-through agent, RSS)",
        ["state", "RSS MB"],
    )
    worker.rows += [
        ["ready (imports done, worker built)", rss["ready"]],
        ["idle for 1 s (connected, blocking reads)", rss["idle"]],
        [f"peak while {size['load']:,} messages pass through", rss["peak"]],
        ["after the load", rss["after"]],
    ]
    m = mem["m"]
    per_m = 1_000_000 / m / MB
    stream_b = (mem["backlog"] - mem["before"]) / m
    pel_b = (mem["pending"] - mem["backlog"]) / m
    srv = Table(
        f"5b. Server memory per pending message ({fmt(int(m))} entries, 100-byte payload + header)",
        ["what", "bytes per entry", "MB per million"],
    )
    srv.rows += [
        ["in the stream, not yet read (backlog)", stream_b, stream_b * m * per_m],
        ["+ in a group's pending list (read, not acked)", pel_b, pel_b * m * per_m],
        [
            "total for a read-but-unacknowledged entry",
            stream_b + pel_b,
            (stream_b + pel_b) * m * per_m,
        ],
    ]
    checks = [
        Check("worker RSS idle", rss["idle"], "<=", TARGET_RSS_MB, "MB"),
        Check("worker RSS peak under load", rss["peak"], "<=", TARGET_RSS_MB, "MB"),
    ]
    notes = ["MB = 10^6 bytes; used_memory from INFO memory; the server runs with persistence off"]
    params: dict[str, Any] = {**size, "rss_mb": rss}
    params["used_memory"] = {k: int(v) for k, v in mem.items()}
    return Report("memory", [worker, srv], checks, notes, params)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    add_mode_args(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    emit(run(mode_of(args)), args.json)


if __name__ == "__main__":
    main()
