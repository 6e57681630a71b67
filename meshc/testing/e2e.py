"""End to end on a real server: every task yields exactly one result per terminal
stream, with an unbroken trace, even when messages are delivered twice on purpose.

Each example submits a few drawn tasks to one intake, waits until the mesh is quiet
(nothing waiting, pending or joining) and reads every stream back, as ``meshc tail``
would. Then, per task:

1. no agent dead-lettered it;
2. each terminal stream reachable from the intake holds exactly one entry of its trace;
3. from each result, ``parent`` links lead back through the declared path (each hop's
   writer declares that stream, its parent lies in one of the writer's inputs) to the
   entry that was submitted;
4. no input entry was committed twice: the harness stalls the first call of every
   non-aggregator agent past the visibility timeout, so another replica reclaims the
   message and both run the handler; the outputs of one attempt only may appear;
5. re-sending the partials of a finished join (a duplicate delivery to an aggregator)
   adds no second result.

Waiting ignores a join's timeout: once nothing has moved for a second, a join still
open waits for a part that no agent will write, so the task is reported at once
(naming the agent that read it and wrote nothing) instead of after ``join.timeout``.

Shrinking an end-to-end failure replays the mesh many times, so it is bounded in
time; past the budget, inputs not seen to fail are taken as passing and the
smallest failure found so far is reported.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import strategies as st
from meshc.ops.client import Submitted
from meshc.runtime import keys
from meshc.runtime.spec import MeshSpec
from meshc.testing.harness import HarnessError, Hop, RunningMesh
from meshc.testing.outcome import CheckFailure, Outcome, RunSettings, run_property
from meshc.testing.strategies import payloads, schema_of

SHRINK_BUDGET = 20.0
OPEN_JOINS_AFTER = 1.0  # quiet this long with a join open: its missing part never comes
MAX_TASKS = 4


def readers(spec: MeshSpec, stream: str) -> list[str]:
    return sorted(n for n, a in spec.agents.items() if stream in a.reads)


def stream_ranks(spec: MeshSpec, intake: str) -> dict[str, int]:
    """How many agents lie between the intake and each stream downstream of it."""
    rank, todo = {intake: 0}, [intake]
    while todo:
        stream = todo.pop(0)
        for name in readers(spec, stream):
            for out in spec.agents[name].writes:
                if out not in rank:
                    rank[out] = rank[stream] + 1
                    todo.append(out)
    return rank


def join_keys(spec: MeshSpec, intake: str) -> list[str]:
    """Intake fields that downstream aggregators join on: tasks of one example get
    distinct values, since tasks sharing a join key share one join (one result)."""
    downstream = stream_ranks(spec, intake)
    fields = spec.streams[intake].model.model_fields
    on = {
        k
        for a in spec.agents.values()
        if a.join is not None and set(a.reads) <= set(downstream)
        for k in a.join.on
    }
    return sorted(on & set(fields))


def terminals_from(spec: MeshSpec, intake: str) -> list[str]:
    """Terminal streams downstream of an intake."""
    seen, todo, found = {intake}, [intake], set()
    while todo:
        stream = todo.pop()
        if spec.streams[stream].terminal:
            found.add(stream)
        for name in readers(spec, stream):
            for out in spec.agents[name].writes:
                if out not in seen:
                    seen.add(out)
                    todo.append(out)
    return sorted(found)


@dataclass
class _Run:
    """Counters and the shrink budget of one end-to-end property."""

    tasks: int = 0
    results: int = 0
    resent: int = 0
    deadline: float | None = None
    known: dict[bytes, CheckFailure] = field(default_factory=dict)

    def exhausted(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


class EndToEnd:
    """The end-to-end property of one intake on a running mesh."""

    def __init__(self, mesh: RunningMesh, intake: str, settle_timeout: float) -> None:
        self.mesh = mesh
        self.spec = mesh.spec
        self.intake = intake
        self.terminals = terminals_from(self.spec, intake)
        self.settle_timeout = settle_timeout
        self.state = _Run()
        self.rank = stream_ranks(self.spec, intake)
        self.join_keys = join_keys(self.spec, intake)

    def run(self, run: RunSettings) -> Outcome:
        outcome = Outcome("end to end", self.intake)
        fields = self.join_keys

        def key(task: dict[str, Any]) -> bytes:
            return orjson.dumps([task.get(f) for f in fields])

        one = payloads(schema_of(self.spec), self.intake)
        tasks = st.lists(one, min_size=1, max_size=MAX_TASKS, unique_by=key if fields else None)
        label = f"tasks for {self.intake}"
        run_property(outcome, tasks, self._example, run, examples=run.e2e_examples, label=label)
        s = self.state
        outcome.note = (
            f"{s.tasks} tasks, {s.results} results, "
            f"{sum(self.mesh.tap.redelivered(a) for a in self.spec.agents)} redeliveries, "
            f"{s.resent} re-sent partials absorbed"
        )
        return outcome

    def _example(self, tasks: list[dict[str, Any]]) -> None:
        key = orjson.dumps(tasks, option=orjson.OPT_SORT_KEYS)
        if key in self.state.known:
            raise self.state.known[key]
        if self.state.exhausted():
            return
        try:
            self._check(tasks)
        except CheckFailure as failure:
            self.state.known[key] = failure
            if self.state.deadline is None:
                self.state.deadline = time.monotonic() + SHRINK_BUDGET
            raise

    def _check(self, tasks: list[dict[str, Any]]) -> None:
        self._settle()  # what an earlier failing example left in flight
        self.mesh.forget_joins()  # earlier tasks used these join keys
        subs = self.mesh.submit_many(tasks, self.intake)
        self._settle()
        hops = self._by_trace({s.trace for s in subs})
        for sub, task in zip(subs, tasks, strict=True):
            self._task(sub, task, hops[sub.trace])
        self.state.tasks += len(subs)
        self.state.results += len(subs) * len(self.terminals)
        self._resend(subs[0], tasks[0], hops[subs[0].trace])

    # -- waiting and reading ------------------------------------------------------------

    def _settle(self) -> None:
        try:
            settled = self.mesh.settle(self.settle_timeout, open_joins_after=OPEN_JOINS_AFTER)
        except HarnessError as err:
            self.state.deadline = time.monotonic()  # the mesh is broken: stop shrinking
            raise CheckFailure(str(err), help="see the worker's error above") from err
        if not settled:
            self.state.deadline = time.monotonic()
            stuck = self._stuck()
            raise CheckFailure(
                f"the mesh did not settle within {self.settle_timeout:g} s"
                + (f": entries stay pending for {', '.join(stuck)}" if stuck else ""),
                agent=stuck[0].strip("`") if stuck else None,
                help="a handler that never returns, or keeps failing below max_deliveries",
            )

    def _stuck(self) -> list[str]:
        out = []
        for name, agent in sorted(self.spec.agents.items()):
            for stream in agent.reads:
                for key in _keys(self.spec, stream):
                    for g in self.mesh.redis.xinfo_groups(key):
                        if _text(g["name"]) == name and int(g["pending"]):
                            out.append(f"`{name}`")
        return sorted(set(out))

    def _by_trace(self, traces: set[str]) -> dict[str, list[Hop]]:
        out: dict[str, list[Hop]] = defaultdict(list)
        for hops in self.mesh.snapshot().values():
            for h in hops:
                if h.trace in traces:
                    out[h.trace].append(h)
        for hops in out.values():
            hops.sort(key=lambda h: (self.rank.get(h.stream, 1 << 30), h.stream, h.id))
        return out

    # -- the checks of one task -----------------------------------------------------------

    def _task(self, sub: Submitted, task: dict[str, Any], hops: list[Hop]) -> None:
        dead = [d for d in self.mesh.dead_letters() if d.trace == sub.trace]
        if dead:
            d = dead[0]
            raise CheckFailure(
                f"agent `{d.agent}` dead-lettered the task's entry {d.source_id} of "
                f"{d.source_stream} after {d.deliveries} deliveries: {d.error[:500]}",
                agent=d.agent,
                payload=task,
                help="the handler failed on this input; run the contract check of that agent",
            )
        for terminal in self.terminals:
            results = [h for h in hops if h.stream == terminal]
            if len(results) != 1:
                raise self._count_failure(sub, task, hops, terminal, results)
            self._walk(sub, task, hops, results[0])
        self._exactly_once(task, hops)

    def _count_failure(
        self, sub: Submitted, task: Any, hops: list[Hop], terminal: str, results: list[Hop]
    ) -> CheckFailure:
        if not results:
            culprit, why = self._silent(hops)
            return CheckFailure(
                f"the task produced no result at {terminal}" + (f": {why}" if why else ""),
                agent=culprit,
                payload=task,
                help="every task should reach every terminal stream once; a handler that "
                "returns None drops the task",
            )
        chains = [self._walk(sub, task, hops, r) for r in results[:2]]
        culprit = _diverges(chains[0], chains[1])
        return CheckFailure(
            f"the task produced {len(results)} results at {terminal}, not one"
            + (f"; they part at agent `{culprit}`" if culprit else ""),
            agent=culprit,
            payload=task,
            details=[f"result {r.id}: {_json(r.data)}" for r in results[:3]],
            help="an agent wrote more than one output for one input",
        )

    def _silent(self, hops: list[Hop]) -> tuple[str | None, str]:
        """The first agent that read an entry of the task and wrote nothing for it."""
        for h in hops:
            for name in readers(self.spec, h.stream):
                agent = self.spec.agents[name]
                wrote = [c for c in hops if c.agent == name and c.stream in agent.writes]
                if agent.join is None:
                    wrote = [c for c in wrote if c.parent == h.id]
                if not wrote:
                    return name, f"`{name}` read entry {h.id} of {h.stream} and wrote nothing"
        return None, ""

    def _walk(self, sub: Submitted, task: Any, hops: list[Hop], result: Hop) -> list[Hop]:
        """The chain from the submitted entry to ``result``; CheckFailure where it breaks."""
        chain, h = [result], result
        while len(chain) < 10_000:
            agent = self.spec.agents.get(h.agent)
            if agent is None or h.stream not in agent.writes:
                raise _broken(
                    task,
                    h,
                    f"names `{h.agent}` as its writer, which does not declare {h.stream}",
                    h.agent,
                )
            if not agent.reads:
                if h.parent or (h.stream, h.id) != (self.intake, sub.entry_id):
                    raise _broken(
                        task, h, "is a root entry but not the task that was submitted", h.agent
                    )
                return chain[::-1]
            parent = next(
                (
                    p
                    for p in hops
                    if p.id == h.parent and p.stream in agent.reads and p.partition == h.partition
                ),
                None,
            )
            if parent is None:
                raise _broken(
                    task,
                    h,
                    f"has parent {h.parent or '(none)'}, which is in none "
                    f"of `{agent.name}`'s input streams",
                    agent.name,
                )
            chain.append(parent)
            h = parent
        raise _broken(task, h, "starts a chain of parents that does not end", h.agent)

    def _exactly_once(self, task: Any, hops: list[Hop]) -> None:
        for h in hops:
            for name in readers(self.spec, h.stream):
                agent = self.spec.agents[name]
                if agent.join is not None or len(agent.reads) > 1:
                    continue  # parents are ids, which may repeat across several inputs
                attempts = sorted(
                    {
                        c.attempt
                        for c in hops
                        if c.agent == name
                        and c.parent == h.id
                        and c.stream in agent.writes
                        and c.partition == h.partition
                    }
                )
                if len(attempts) > 1:
                    raise CheckFailure(
                        f"entry {h.id} of {h.stream} was delivered {len(attempts)} times and "
                        f"the outputs of every delivery (attempts {attempts}) were written",
                        agent=name,
                        payload=task,
                        help="outputs must be committed once per input (the commit script's "
                        "XACK gate); this is a runtime bug, please report it",
                    )

    def _resend(self, sub: Submitted, task: Any, hops: list[Hop]) -> None:
        """Deliver the partials of a finished join again; the result must not repeat."""
        sent = 0
        for _, agent in sorted(self.spec.agents.items()):
            if agent.join is None:
                continue
            for h in hops:
                if h.stream in agent.reads:
                    key = _keys(self.spec, h.stream)[h.partition]
                    self.mesh.redis.xadd(key, _fields(h))  # type: ignore[arg-type]
                    sent += 1
        if not sent:
            return
        self._settle()
        after = self._by_trace({sub.trace})[sub.trace]
        for terminal in self.terminals:
            results = [h for h in after if h.stream == terminal]
            if len(results) != 1:
                culprit = next((h.agent for h in results[1:]), None)
                raise CheckFailure(
                    f"re-sending the partials of a finished join gave {len(results)} results "
                    f"at {terminal}",
                    agent=culprit,
                    payload=task,
                    help="a partial that arrives after its join is done must count as late, "
                    "not be merged again; this is a runtime bug, please report it",
                )
        self.state.resent += sent


def _keys(spec: MeshSpec, stream: str) -> list[str]:
    return [keys.stream_key(stream, spec.name, p, spec.partitions) for p in range(spec.partitions)]


def _fields(h: Hop) -> dict[str, str]:
    return {
        "data": _json(h.data),
        "trace": h.trace,
        "parent": h.parent,
        "agent": h.agent,
        "attempt": str(h.attempt),
        **dict(h.task),  # the same task: its join is the one already done
    }


def _json(data: Any) -> str:
    return orjson.dumps(data).decode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _broken(task: Any, h: Hop, what: str, agent: str | None) -> CheckFailure:
    return CheckFailure(
        f"the trace is broken: entry {h.id} of {h.stream} {what}",
        agent=agent,
        payload=task,
        help="outputs carry the input's trace and their parent entry id; write them "
        "through the runtime (return or ctx.emit), never with your own client",
    )


def _diverges(a: Iterable[Hop], b: Iterable[Hop]) -> str | None:
    """The agent that wrote the first entry where two chains from one root differ."""
    for x, y in zip(a, b, strict=False):
        if (x.stream, x.id) != (y.stream, y.id):
            return x.agent
    return None
