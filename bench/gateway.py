"""Benchmark 8: what the HTTP gateway costs, and what a thousand waiting callers cost it.

The mesh is one pass-through hop (a coordinator with the built-in ``fanout`` and one
output, terminal), run by ``meshc run``'s supervisor as worker processes on a private
server. The gateway is ``meshc serve`` in its own process, with bearer auth on.

* **Latency**: tasks one at a time, alternating between the two ways in: through the
  gateway (httpx, keep-alive: ``POST /tasks/b.in`` then ``GET /tasks/{trace}?wait=``)
  and through :class:`MeshClient` (``submit`` then ``wait``) on the same mesh, so a slow
  spell of the machine hits both. p50 and p99 of each, and the difference of the p50s
  (what the gateway adds).
  The gateway process's CPU time per task (user + system, psutil) is given beside:
  unlike latency, it hardly moves with the load of the machine.
* **Held long-polls**: the workers stop, N tasks are submitted through the gateway, and
  N ``GET ?wait=`` requests are held open at once (one asyncio httpx client, N
  connections). Once ``/healthz`` counts N held, the gateway's RSS is read (psutil) and
  compared with its RSS before; then the workers start again and every held request
  must end with its result (200).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Check,
    Mode,
    Report,
    Table,
    add_mode_args,
    emit,
    median,
    mode_of,
    percentile,
    server,
)

SIZES: dict[Mode, dict[str, int]] = {
    "smoke": {"tasks": 20, "held": 50},
    "quick": {"tasks": 200, "held": 1_000},
    "full": {"tasks": 500, "held": 1_000},
}
TOKEN = "bench-token-0123456789abcdef"
WARMUP = 5
TARGET_ADDED_P50_MS = 3.0
TARGET_RSS_MB = 150.0
MESH = """\
mesh: gwbench
version: 1
types:
  Msg: {n: int, text: str}
streams:
  b.in: {type: Msg, max_backlog: 100000}
  b.out: {type: Msg, terminal: true}
agents:
  feed: {role: producer, writes: [b.in]}
  relay: {role: coordinator, reads: [b.in], writes: [b.out]}
"""


def run(mode: Mode = "full") -> Report:
    size = SIZES[mode]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="meshc-bench-") as tmp, server() as srv:
        path = Path(tmp) / "gwbench.yaml"
        path.write_text(MESH)
        from meshc.codegen.build import build_cached

        built = build_cached(str(path), Path(tmp))
        spec = built.load_spec()
        with gateway_process(str(path), srv.url, tmp) as (base, proc):
            with workers(spec, built, srv.url):
                cpu = _cpu(proc)
                lat = latency(spec, srv.url, base, size["tasks"])
                lat["cpu"] = [(_cpu(proc) - cpu) / (size["tasks"] + WARMUP)]
            held = hold(spec, built, srv.url, base, proc, size["held"])
    report = _report(lat, held, size)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def gateway_process(mesh: str, url: str, cwd: str) -> Iterator[tuple[str, Any]]:
    """``meshc serve`` as a child process; yields its URL and its psutil process."""
    import psutil
    from meshc.runtime.process.server import free_port

    port = free_port()
    env = {**os.environ, "MESHC_SERVE_TOKENS": TOKEN}
    argv = [sys.executable, "-m", "meshc", "serve", mesh, "--redis", url, "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.contextmanager
def workers(spec: Any, built: Any, url: str) -> Iterator[None]:
    from meshc.demo import running_workers

    with running_workers(spec, built, url):
        yield


def _cpu(proc: Any) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"meshc serve exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("meshc serve did not answer in time")


def latency(spec: Any, url: str, base: str, n: int) -> dict[str, list[float]]:
    """Seconds per task through each way in, alternating (after a warm-up of each)."""
    from meshc.ops.client import MeshClient

    auth = {"Authorization": f"Bearer {TOKEN}"}
    out: dict[str, list[float]] = {"gateway": [], "meshclient": []}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as http, MeshClient(spec, url) as mc:

        def via_gateway(i: int) -> float:
            t0 = time.perf_counter()
            sent = http.post("/tasks/b.in", json={"n": i, "text": "x" * 64})
            got = http.get(sent.headers["location"], params={"wait": 10})
            if got.status_code != 200:
                raise RuntimeError(f"gateway: no result for task {i}: {got.status_code}")
            return time.perf_counter() - t0

        def via_client(i: int) -> float:
            t0 = time.perf_counter()
            mc.wait(mc.submit({"n": i, "text": "x" * 64}), timeout=10)
            return time.perf_counter() - t0

        for i in range(WARMUP):  # warm-up: connections, the workers' first reads
            via_gateway(i), via_client(i)
        for i in range(n):
            first, second = (via_gateway, via_client) if i % 2 else (via_client, via_gateway)
            for way in (first, second):
                out["gateway" if way is via_gateway else "meshclient"].append(way(i))
    return out


def hold(spec: Any, built: Any, url: str, base: str, proc: Any, n: int) -> dict[str, float]:
    """N long-polls held at once with the workers stopped; RSS before and while held."""
    return asyncio.run(_hold(spec, built, url, base, proc, n))


async def _hold(spec: Any, built: Any, url: str, base: str, proc: Any, n: int) -> dict[str, float]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=120, limits=limits) as http:
        before = proc.memory_info().rss
        traces = []
        for i in range(n):
            sent = await http.post("/tasks/b.in", json={"n": i, "text": "x" * 64})
            traces.append(sent.json()["trace"])
        polls = [asyncio.create_task(http.get(f"/tasks/{t}", params={"wait": 60})) for t in traces]
        t0 = time.perf_counter()
        while (await http.get("/healthz")).json()["held"]["long_polls"] < n:
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("the long-polls were not all held within 60 s")
            await asyncio.sleep(0.1)
        held_after = time.perf_counter() - t0
        peak = max(proc.memory_info().rss for _ in range(5))
        t1 = time.perf_counter()
        with workers(spec, built, url):
            answers = await asyncio.gather(*polls)
            drained = time.perf_counter() - t1
    ok = sum(a.status_code == 200 for a in answers)
    return {"before": before, "held": peak, "ok": ok, "open_s": held_after, "drain_s": drained}


def _report(lat: dict[str, list[float]], held: dict[str, float], size: dict[str, int]) -> Report:
    ms = {k: [v * 1000 for v in vs] for k, vs in lat.items()}
    table = Table(
        "8a. One task through the gateway vs MeshClient, same mesh, same run (bench/gateway.py)",
        ["way in", "tasks", "p50 ms", "p99 ms", "mean ms", "gateway CPU ms per task"],
    )
    for name, label, cpu in (("meshclient", "MeshClient submit + wait", "-"),
                             ("gateway", "gateway POST + GET ?wait", ms["cpu"][0])):  # fmt: skip
        values = ms[name]
        table.rows.append([label, len(values), median(values), percentile(values, 99),
                           sum(values) / len(values), cpu])  # fmt: skip
    added = median(ms["gateway"]) - median(ms["meshclient"])
    mb = 1024 * 1024
    per_poll = (held["held"] - held["before"]) / size["held"] / 1024
    held_table = Table(
        "8b. Long-polls held open at once by one gateway process",
        ["held", "RSS before MB", "RSS held MB", "KB per held poll", "answered 200", "drain s"],
        [[size["held"], held["before"] / mb, held["held"] / mb, per_poll, int(held["ok"]),
          held["drain_s"]]],
    )  # fmt: skip
    checks = [
        Check("gateway adds to a task's p50", added, "<=", TARGET_ADDED_P50_MS, "ms"),
        Check(f"gateway RSS with {size['held']} long-polls held", held["held"] / mb, "<=",
              TARGET_RSS_MB, "MB"),
        Check("held long-polls answered with their result", held["ok"], ">=", size["held"]),
    ]  # fmt: skip
    return Report("gateway", [table, held_table], checks, [], dict(size))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    add_mode_args(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    emit(run(mode_of(args)), args.json)


if __name__ == "__main__":
    main()
