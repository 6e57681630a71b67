"""Benchmark 4: mesh throughput with 1, 2 and 4 replicas per specialist.

The review mesh of ``bench.fanout`` (coordinator, four lanes, aggregator; one worker
process per replica), with the lanes either CPU-bound (about 2 ms of pure Python per
call) or I/O-bound (a 10 ms sleep per call, batches of 10 so replicas share the work
evenly). N tasks are preloaded into the intake and the whole mesh is timed from GO to
the N-th summary, as in ``bench.fanout``. One more I/O-bound row runs one replica with
``concurrency: 4`` (four handler threads in one process) for comparison. Quick mode
runs 1 and 4 replicas only.

What limits each: a CPU-bound lane needs a core per replica, and there are two cores
here (shared with the server and the other agents), so replicas cannot help; an
I/O-bound lane spends its time asleep, so each replica adds one more call in flight
until the CPU or the server becomes the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from bench.common import Mode, Report, Table, add_mode_args, emit, mode_of, server
from bench.fanout import CPU_LOOPS, IO_SLEEP, LANES, burn, throughput

SIZES: dict[Mode, dict[str, Any]] = {
    "smoke": {"cpu": 20, "io": 20, "replicas": (1, 2)},
    "quick": {"cpu": 150, "io": 150, "replicas": (1, 4)},
    "full": {"cpu": 600, "io": 500, "replicas": (1, 2, 4)},
}


def run(mode: Mode = "full") -> Report:
    size = SIZES[mode]
    started = time.perf_counter()
    rows: list[tuple[str, int, int, float]] = []
    with server() as srv:
        for kind in ("cpu", "io"):
            for replicas in size["replicas"]:
                rate = throughput(srv.url, kind, size[kind], replicas=replicas)
                rows.append((kind, replicas, 1, rate))
        rate = throughput(srv.url, "io", size["io"], replicas=1, concurrency=4)
        rows.append(("io", 1, 4, rate))
    report = _report(rows, size)
    report.seconds = time.perf_counter() - started
    return report


def _cpu_ms() -> float:
    start = time.process_time()
    for _ in range(20):
        burn()
    return (time.process_time() - start) / 20 * 1000


def _report(rows: list[tuple[str, int, int, float]], size: dict[str, Any]) -> Report:
    base = {kind: rate for kind, replicas, conc, rate in rows if replicas == 1 and conc == 1}
    cpu_ms = _cpu_ms()
    cores = os.cpu_count() or 1
    table = Table(
        "4. Replicas: review-mesh throughput (tasks/s; each task is one call per lane)",
        [
            "lane handler",
            "replicas",
            "concurrency",
            "tasks",
            "tasks/s",
            "vs 1 replica",
            "ceiling from handlers alone",
        ],
    )
    for kind, replicas, conc, rate in rows:
        if kind == "cpu":
            label = f"CPU-bound ({cpu_ms:.1f} ms of Python)"
            ceiling = cores * 1000 / (len(LANES) * cpu_ms)  # 4 lanes share the cores
        else:
            label = f"I/O-bound ({IO_SLEEP * 1000:.0f} ms sleep)"
            ceiling = replicas * conc / IO_SLEEP  # calls in flight per lane
        table.rows.append([label, replicas, conc, size[kind], rate, rate / base[kind], ceiling])
    notes = [
        f"ceiling: CPU-bound, {cores} cores / ({len(LANES)} lanes x {cpu_ms:.1f} ms), whatever "
        "the replicas; I/O-bound, replicas x concurrency / sleep",
        "workers run as subprocesses, one per replica; the server, coordinator and "
        "aggregator share the same cores",
    ]
    params = {
        "sizes": {k: v for k, v in size.items() if k != "replicas"},
        "replicas": list(size["replicas"]),
        "io_sleep_s": IO_SLEEP,
        "cpu_ms": cpu_ms,
        "cpu_loops": CPU_LOOPS,
    }
    return Report("replicas", [table], [], notes, params)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    add_mode_args(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    emit(run(mode_of(args)), args.json)


if __name__ == "__main__":
    main()
