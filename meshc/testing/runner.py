"""``meshc test``: every check on every agent, then end to end; the report's data.

The plan, in pipeline order (producers' readers first): per agent that reads,
*contract* and *determinism*, and for aggregators *join order*; then, unless one
agent was chosen, *end to end* per intake on a real server, and *exactly once* for
each agent marked ``deterministic: false`` (whose duplicate deliveries the end-to-end
run provoked). Every check runs even after one failed, so a report names every
problem at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from meshc.runtime import keys
from meshc.runtime.connect import connect
from meshc.runtime.keys import stream_keys
from meshc.runtime.spec import MeshSpec
from meshc.testing import checks
from meshc.testing.e2e import EndToEnd
from meshc.testing.harness import RunningMesh, tuned
from meshc.testing.loading import LoadedMesh, load
from meshc.testing.outcome import FAIL, SKIP, CheckFailure, Outcome, RunSettings
from meshc.testing.server import TestServer
from meshc.testing.tap import Tap

Progress = Callable[[int, int, str], None]

# End-to-end policy: short visibility timeout so a stalled replica's message is
# reclaimed quickly; the stall is three times that, so the reclaiming replica has
# committed before the stalled one finishes and tries to.
VISIBILITY_TIMEOUT = 0.5
STALL = 1.5
MAX_DELIVERIES = 5
REPLICAS = 2
SETTLE_TIMEOUT = 30.0  # joins do not count: one left open when all else is quiet fails


class UnknownAgent(Exception):
    """Raised when ``agent`` names no agent of the mesh."""

    def __init__(self, agent: str, known: list[str]) -> None:
        self.agent = agent
        super().__init__(f"the mesh has no agent {agent!r} (agents: {', '.join(known)})")


class ServerInUse(Exception):
    """Raised when ``--redis`` points at a server that already holds this mesh's keys."""


@dataclass
class Report:
    """Everything ``meshc test`` prints: the mesh, the settings, one outcome per check."""

    path: str
    mesh: MeshSpec
    run: RunSettings
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    agent: str | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]


def pipeline_order(spec: MeshSpec) -> list[str]:
    """Agents that read, nearest to an intake first (ties by name)."""
    depth: dict[str, int] = {}
    frontier = set(spec.intake_streams())
    level, seen = 0, set(frontier)
    while frontier:
        nxt: set[str] = set()
        for name in sorted(spec.agents):
            agent = spec.agents[name]
            if name not in depth and agent.reads and frontier & set(agent.reads):
                depth[name] = level
                nxt |= set(agent.writes) - seen
        seen |= nxt
        frontier, level = nxt, level + 1
    rest = [n for n, a in spec.agents.items() if a.reads and n not in depth]
    return sorted(depth, key=lambda n: (depth[n], n)) + sorted(rest)


def run_tests(
    path: str,
    run: RunSettings,
    *,
    agent: str | None = None,
    redis_url: str | None = None,
    progress: Progress | None = None,
    folder: Path | None = None,
) -> Report:
    """Run every check of the mesh at ``path``. MeshError for an invalid file, OSError
    for an unreadable one, UnknownAgent for an unknown ``agent``, ServerInUse for a busy
    ``--redis`` server; the checks' own findings are in the report."""
    started = time.monotonic()
    loaded = load(path, folder)
    if agent is not None and agent not in loaded.spec.agents:
        raise UnknownAgent(agent, sorted(loaded.spec.agents))
    report = Report(path, loaded.spec, run, agent=agent)
    steps = _unit_steps(loaded, run, agent)
    e2e = agent is None and not loaded.problems
    total = len(steps) + (len(loaded.spec.intake_streams()) if e2e else 0)
    caller = checks.Caller(loaded.spec)
    try:
        with _quiet_workers():
            for i, (label, step) in enumerate(steps, 1):
                if progress:
                    progress(i, total, label)
                report.outcomes.append(step(caller))
            if e2e:
                report.outcomes += _end_to_end(loaded, run, redis_url, progress, len(steps), total)
            elif agent is None:
                report.outcomes.append(_e2e_skipped(loaded))
    finally:
        caller.close()
    report.seconds = time.monotonic() - started
    return report


Step = Callable[[checks.Caller], Outcome]


def _unit_steps(loaded: LoadedMesh, run: RunSettings, only: str | None) -> list[tuple[str, Step]]:
    spec = loaded.spec
    steps: list[tuple[str, Step]] = []
    if only is not None and not spec.agents[only].reads:
        note = f"{spec.agents[only].role}: reads nothing, runs no handler"
        return [(f"handler · {only}", lambda _caller: Outcome("handler", only, SKIP, note=note))]
    for name in pipeline_order(spec):
        if only is not None and name != only:
            continue
        if name in loaded.problems:
            steps.append((f"handler · {name}", _problem_step(name, loaded.problems[name])))
            continue
        for check in (checks.contract, checks.determinism, checks.join_order):
            if check is checks.join_order and spec.agents[name].join is None:
                continue
            steps.append(
                (f"{check.__name__.replace('_', ' ')} · {name}", _step(check, loaded, name, run))
            )
    return steps


def _step(check: Callable[..., Outcome], loaded: LoadedMesh, name: str, run: RunSettings) -> Step:
    def step(caller: checks.Caller) -> Outcome:
        spec = loaded.spec
        return check(spec, spec.agents[name], loaded.handlers[name], caller, run)

    return step


def _problem_step(name: str, problem: str) -> Step:
    def step(_caller: checks.Caller) -> Outcome:
        if "`llm`" in problem:
            return Outcome("handler", name, SKIP, note="llm handler: stub it to test")
        failure = CheckFailure(
            problem,
            agent=name,
            help="fix the handler reference in the mesh, or run from the project folder",
        )
        return Outcome("handler", name, FAIL, failure=failure)

    return step


def _e2e_skipped(loaded: LoadedMesh) -> Outcome:
    who = ", ".join(f"`{a}`" for a in sorted(loaded.problems))
    return Outcome("end to end", "(mesh)", SKIP, note=f"skipped: no usable handler for {who}")


def _end_to_end(
    loaded: LoadedMesh,
    run: RunSettings,
    redis_url: str | None,
    progress: Progress | None,
    done: int,
    total: int,
) -> list[Outcome]:
    spec = tuned(
        loaded.spec,
        replicas=REPLICAS,
        visibility_timeout=VISIBILITY_TIMEOUT,
        max_deliveries=MAX_DELIVERIES,
    )
    stalled = [n for n, a in spec.agents.items() if a.reads and a.join is None]
    tap = Tap(STALL, stalled)
    settle = SETTLE_TIMEOUT
    outcomes = []
    with _server(spec, redis_url) as url, RunningMesh(spec, url, loaded.handlers, tap=tap) as mesh:
        for i, intake in enumerate(spec.intake_streams(), done + 1):
            if progress:
                progress(i, total, f"end to end · {intake} (real server)")
            outcomes.append(EndToEnd(mesh, intake, settle).run(run))
    for name in pipeline_order(spec):
        if not spec.agents[name].deterministic:
            outcomes.append(_exactly_once(name, tap, outcomes))
    return outcomes


def _exactly_once(name: str, tap: Tap, e2e: list[Outcome]) -> Outcome:
    """The end-to-end verdict for a non-deterministic agent's duplicate deliveries."""
    twice = tap.redelivered(name)
    outcome = Outcome("exactly once", name, examples=twice)
    blamed = [o for o in e2e if o.failure is not None and o.failure.agent == name]
    if blamed:
        outcome.status, outcome.failure = FAIL, blamed[0].failure
    elif twice:
        inputs = "input" if twice == 1 else "inputs"
        outcome.note = f"{twice} {inputs} handled twice, one set of outputs each"
    else:
        outcome.status, outcome.note = SKIP, "no duplicate delivery happened"
    return outcome


@contextlib.contextmanager
def _server(spec: MeshSpec, url: str | None) -> Iterator[str]:
    """A throw-away server, or the given one when it holds none of the mesh's keys
    (whose keys are deleted again afterwards)."""
    if url is None:
        with TestServer() as own:
            yield own
        return
    client = connect(url)
    try:
        used = [k for k in _mesh_keys(client, spec) if client.exists(k)]
        if used:
            raise ServerInUse(
                f"the server at --redis already holds keys of mesh {spec.name!r} "
                f"({', '.join(used[:3])}…); meshc test needs a server (or database) "
                "without them, e.g. redis://host:6379/15"
            )
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            for k in _mesh_keys(client, spec):
                client.delete(k)
        client.close()


def _mesh_keys(client: redis.Redis, spec: MeshSpec) -> list[str]:
    out = [k for s in spec.streams for k in stream_keys(spec, s)]
    for name in spec.agents:
        out += [
            keys.stream_key(keys.dlq_stream(spec.name, name), spec.name, p, spec.partitions)
            for p in range(spec.partitions)
        ]
    out += [k.decode() for k in client.scan_iter(match=f"{spec.name}:*", count=1000)]
    return sorted(set(out))


@contextlib.contextmanager
def _quiet_workers() -> Iterator[None]:
    """Keep worker and handler logs out of the report (failures are in the outcomes)."""
    log = logging.getLogger("meshc.worker")
    saved = (log.propagate, log.handlers[:], log.level)
    log.propagate, log.handlers = False, [logging.NullHandler()]
    try:
        yield
    finally:
        log.propagate, log.handlers = saved[0], saved[1]
        log.setLevel(saved[2])
