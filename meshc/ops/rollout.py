"""``meshc rollout``: move a mesh running OLD to NEW on a live server, safely.

The plan comes from two places: ``meshc diff``'s findings settled against what the
server holds (which changes would break work in flight), and the reload plan of the
runtime (``runtime.process.reload.plan``: groups to create, agents to start, restart,
drain and stop, groups to destroy). Findings that the rollout resolves by draining
(an agent, a stream or a read removed) do not stop it: the reload waits until they
are drained. Any other finding that breaks stops it unless forced.

Applying it updates the server's record of the running mesh (its version, type forms
and the file to load) and sends SIGHUP to the ``meshc run`` that runs it, then waits
until that run reports the new version loaded. With no run alive, it does what the
server needs itself (groups created, drained groups destroyed), and the next
``meshc run NEW`` starts the new version.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from meshc.core import CoreMesh
from meshc.diff import diff_meshes, finish
from meshc.diff.findings import Finding, Report
from meshc.ops.diff_facts import Facts, settle
from meshc.runtime import running
from meshc.runtime.errors import MeshOpsError
from meshc.runtime.process import reload
from meshc.runtime.spec import MeshSpec

# Findings a rollout resolves itself, by draining before it stops or narrows a reader.
DRAINED = frozenset({"agent-removed", "stream-removed", "reads-removed", "family-changed"})


@dataclass
class Rollout:
    """Everything the plan says, and why it may be refused."""

    old: MeshSpec
    new: MeshSpec
    report: Report
    steps: reload.Plan
    record: dict[str, str]
    age_ms: int | None  # of the run's heartbeat; None: no run recorded
    blocking: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.age_ms is not None and 0 <= self.age_ms <= running.STALE_MS

    @property
    def at_new(self) -> bool:
        return self.record.get("loaded") == self.new.fingerprint

    def to_json(self) -> dict[str, Any]:
        s = self.steps
        return {
            "mesh": self.new.name,
            "from": {"version": self.old.version, "fingerprint": self.old.fingerprint},
            "to": {"version": self.new.version, "fingerprint": self.new.fingerprint},
            "running": self.running_text(),
            "create_groups": [{"agent": a, "stream": st, "at": "$"} for a, st in s.new_reads],
            "start": list(s.added),
            "restart": list(s.restart),
            "drain_and_stop": list(s.removed),
            "drain_and_restart": list(s.after_drain),
            "destroy_groups": [{"agent": a, "stream": st} for a, st in s.gone_reads],
            "blocking": [f.message for f in self.blocking],
            "problems": self.problems,
            "counts": self.report.counts(),
        }

    def running_text(self) -> str:
        r = self.record
        if not r:
            return "no run recorded on this server"
        who = f"host {r.get('host')}, pid {r.get('pid')}"
        if self.age_ms is None or self.age_ms < 0:
            state = "stopped"
        else:
            state = f"heartbeat {self.age_ms / 1000:.0f} s ago" + ("" if self.live else ", gone")
        return f"v{r.get('version')} {r.get('loaded', '?')} ({who}; {state})"


def plan(client: redis.Redis, old_core: CoreMesh, new_core: CoreMesh, old: MeshSpec,
         new: MeshSpec, files: tuple[str, str]) -> Rollout:  # fmt: skip
    """The rollout of ``old`` to ``new`` against what ``client``'s server holds."""
    if old.name != new.name:
        raise MeshOpsError(
            f"OLD declares mesh `{old.name}` and NEW `{new.name}`: a rollout moves one mesh "
            "to its next version (a stream belongs to one mesh)"
        )
    report = settle(diff_meshes(old_core, new_core, *files), Facts(client, old_core))
    report = finish(report, old_core, new_core)
    record = running.read_record(client, new.name)
    out = Rollout(old, new, report, reload.plan(old, new), record, _age(client, record))
    out.blocking = [f for f in report.findings if f.effective == "breaks" and f.rule not in DRAINED]
    loaded = record.get("loaded")
    if loaded and loaded not in (old.fingerprint, new.fingerprint):
        out.problems.append(
            f"the server runs {new.name} {loaded}, which is neither OLD ({old.fingerprint}) "
            f"nor NEW ({new.fingerprint}): give the file it runs as OLD"
        )
    return out


def _age(client: redis.Redis, record: dict[str, str]) -> int | None:
    if not record:
        return None
    beat = int(record.get("heartbeat") or 0)
    if beat <= 0:
        return -1
    secs, micros = client.time()
    return int(secs) * 1000 + int(micros) // 1000 - beat


def apply(client: redis.Redis, r: Rollout, new_file: str, *, wait: float,
          say: Callable[[str], None]) -> int:  # fmt: skip
    """Carry the rollout out; 0 when the new version runs (or will at the next run)."""
    record = r.record
    fields = running.record_fields(
        r.new,
        os.path.abspath(new_file),
        pid=int(record["pid"]) if record.get("pid", "").isdigit() else None,
        host=record.get("host") or None,
    )
    if not r.live:
        return _offline(client, r, fields, say)
    running.claim(client, r.new, fields)
    if record.get("host") != socket.gethostname():
        say(f"record updated; send SIGHUP to pid {record.get('pid')} on host "
            f"{record.get('host')} (the `meshc run` of {r.new.name}) to load it")  # fmt: skip
        return 0
    pid = int(record["pid"])
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return _offline(client, r, fields, say)
    say(f"sent SIGHUP to `meshc run` (pid {pid}); waiting for it to load v{r.new.version}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if running.read_record(client, r.new.name).get("loaded") == r.new.fingerprint:
            say(f"{r.new.name} runs v{r.new.version} ({r.new.fingerprint})")
            return 0
        time.sleep(0.2)
    say(f"`meshc run` (pid {pid}) has not loaded v{r.new.version} within {wait:g} s: it may "
        "still be draining; its log says what it waits on")  # fmt: skip
    return 1


def _offline(client: redis.Redis, r: Rollout, fields: dict[str, str],
             say: Callable[[str], None]) -> int:  # fmt: skip
    """No run is alive: prepare the server, so that `meshc run NEW` starts from it."""
    drains = [(a, s) for a in r.steps.removed for s in r.old.agents[a].reads]
    drains += [p for p in r.steps.gone_reads if p not in drains]
    busy = {p: n for p in drains if (n := reload.backlog(client, r.old, *p))}
    if busy:
        left = ", ".join(f"{a} on {s}: {n}" for (a, s), n in sorted(busy.items()))
        say(f"no `meshc run` is alive to drain what is left ({left}): run OLD until it "
            "is drained, or roll out while it runs")  # fmt: skip
        return 1
    reload.create_groups_at_end(client, r.new, r.steps.new_reads)
    reload.destroy_groups(client, r.old, r.steps.gone_reads)
    running.claim(client, r.new, {**fields, "heartbeat": "0"})
    running.mark_loaded(client, r.new)
    say(
        f"no `meshc run` is alive: the server is ready for v{r.new.version}; "
        "`meshc run NEW` starts it"
    )
    return 0
