"""A mesh running inside the test process: real workers on a real server.

Workers run **in-process**, as asyncio tasks of one event loop in a background
thread, rather than as one subprocess per replica (what ``meshc run`` does). Starting
is then a few milliseconds instead of an interpreter per replica, handlers can be
wrapped (to count calls and to stall a replica so its message is delivered twice on
purpose), worker counters are readable directly, and a handler's exception reaches
the report instead of a child's stderr. What is lost, process isolation, is not what
these tests are about: the Worker, its scripts and the server are exactly the ones
``meshc run`` uses.

Tests call the synchronous API (``submit``, ``wait``, ``settle``, ``entries``,
``trace``) from their own thread; the harness never shares a connection with the
workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis
from meshc.ops.client import (
    MeshClient,
    Result,
    Submitted,
    decode_entry,
    group_lag,
    read_range,
)
from meshc.runtime import keys
from meshc.runtime.builtins import resolve_handler
from meshc.runtime.connect import connect
from meshc.runtime.context import Context
from meshc.runtime.keys import stream_keys
from meshc.runtime.replica import Stats
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import TASK, text
from meshc.runtime.worker import Worker
from meshc.testing.tap import Tap

Handler = Callable[..., Any]
STOP_TIMEOUT = 15.0
STEADY = 0.06  # seconds of no change before the mesh counts as settled


class HarnessError(Exception):
    """Raised when the running mesh cannot do what a test asked: a worker died, or the
    mesh did not settle in time."""


@dataclass(frozen=True)
class Hop:
    """One entry of one stream, decoded: where it is and what its header says."""

    stream: str
    partition: int
    id: str
    trace: str
    parent: str
    agent: str
    attempt: int
    data: Any
    task: tuple[tuple[str, str], ...] = ()  # its task fields (``task.*``), name and value


@dataclass(frozen=True)
class DeadLetter:
    """An entry an agent gave up on, with the error it recorded."""

    agent: str
    source_stream: str
    source_id: str
    trace: str
    error: str
    deliveries: int
    data: Any


def tuned(
    spec: MeshSpec,
    *,
    replicas: int | None = None,
    visibility_timeout: float | None = None,
    max_deliveries: int | None = None,
) -> MeshSpec:
    """The spec with test-friendly policy: every given setting overrides each agent's."""
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("replicas", replicas),
            ("visibility_timeout", visibility_timeout),
            ("max_deliveries", max_deliveries),
        )
        if v is not None
    }
    agents = {
        name: dataclasses.replace(a, policy=dataclasses.replace(a.policy, **changes))
        for name, a in spec.agents.items()
    }
    return dataclasses.replace(spec, agents=agents)


class RunningMesh:
    """Workers of every agent that reads, serving ``url`` until ``stop()``.

    ``handlers`` maps agent names to callables (missing agents get their role's
    built-in); ``tap`` wraps them. Replicas follow each agent's policy.
    """

    def __init__(
        self,
        spec: MeshSpec,
        url: str,
        handlers: Mapping[str, Handler] | None = None,
        *,
        tap: Tap | None = None,
        block_ms: int = 50,
    ) -> None:
        self.spec = spec
        self.url = url
        self.tap = tap or Tap()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.redis: redis.Redis = connect(url)
        self.client = MeshClient(spec, client=self.redis)
        self.tap.lose = self._lose
        self.workers: list[Worker] = []
        for name in sorted(spec.agents):
            agent = spec.agents[name]
            if not agent.reads:
                continue
            handler = (handlers or {}).get(name) or resolve_handler(agent, None)
            wrapped = self.tap.wrap(name, handler)
            for i in range(agent.policy.replicas):
                self.workers.append(
                    Worker(
                        spec,
                        name,
                        wrapped,
                        redis_url=url,
                        consumer=f"{name}-{i}",
                        stop=self._stop,
                        block_ms=block_ms,
                    )
                )

    def _lose(self, ctx: Context) -> None:
        """Take the entry of a running call away from its worker, as a stalled worker's
        entry would be: owned by nobody alive and idle for the visibility timeout, so
        another replica takes it over at once."""
        spec = self.spec
        key = keys.stream_key(ctx.stream, spec.name, ctx.partition, spec.partitions)
        idle = int(spec.agents[ctx.agent].policy.visibility_timeout * 1000)
        self.redis.xclaim(
            key, ctx.agent, "meshc-test:stalled", 0, [ctx.entry_id], idle=idle, justid=True
        )

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> RunningMesh:
        """Create every consumer group, then start the workers (so nothing submitted
        afterwards can be missed) and return at once."""
        self._create_groups()
        self._thread = threading.Thread(target=self._serve, name="meshc-test-workers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading; batches in flight finish and commit; then disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None
        self.redis.close()

    def __enter__(self) -> RunningMesh:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _create_groups(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name, agent in self.spec.agents.items():
            for stream in agent.reads:
                for key in stream_keys(self.spec, stream):
                    pipe.xgroup_create(key, name, id="0", mkstream=True)
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        tasks = []
        for w in self.workers:
            task = asyncio.create_task(w.run())
            task.add_done_callback(self._on_done(w))
            tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_done(self, w: Worker) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                self.errors.append(
                    f"a worker of agent `{w.spec.name}` stopped: {type(exc).__name__}: {exc}"
                )

        return done

    # -- the caller's side ------------------------------------------------------------

    def submit(self, payload: Mapping[str, Any], stream: str | None = None) -> Submitted:
        """Write one task to an intake (the only one when ``stream`` is None)."""
        return self.client.submit(dict(payload), stream)

    def submit_many(
        self, payloads: Iterable[Mapping[str, Any]], stream: str | None = None
    ) -> list[Submitted]:
        return self.client.submit_many([dict(p) for p in payloads], stream)

    def wait(
        self, task: Submitted | str, stream: str | None = None, timeout: float = 10.0
    ) -> Result:
        """The task's result on a terminal stream (the only one when ``stream`` is None)."""
        return self.client.wait(task, stream=stream, timeout=timeout)

    # -- what happened ------------------------------------------------------------------

    def entries(self, stream: str) -> list[Hop]:
        """Every entry of ``stream``, partition by partition, oldest first."""
        out = []
        for p, key in enumerate(stream_keys(self.spec, stream)):
            for eid, fields in read_range(self.redis, key):
                e = decode_entry(eid, fields)
                out.append(
                    Hop(
                        stream,
                        p,
                        e["id"],
                        e["trace"],
                        e["parent"],
                        e["agent"],
                        e["attempt"],
                        e["data"],
                        tuple((text(k), text(v)) for k, v in fields.items() if k.startswith(TASK)),
                    )
                )
        return out

    def snapshot(self) -> dict[str, list[Hop]]:
        """Every entry of every stream of the mesh, by stream."""
        return {s: self.entries(s) for s in sorted(self.spec.streams)}

    def trace(self, task: Submitted | str) -> list[Hop]:
        """Every entry that carries the task's trace, stream by stream."""
        trace = task.trace if isinstance(task, Submitted) else task
        return [h for hops in self.snapshot().values() for h in hops if h.trace == trace]

    def results(self, stream: str | None = None) -> list[Hop]:
        """Entries of one terminal stream, or of all of them."""
        names = [stream] if stream else list(self.spec.terminal_streams())
        return [h for s in names for h in self.entries(s)]

    def dead_letters(self, agent: str | None = None) -> list[DeadLetter]:
        names = [agent] if agent else sorted(self.spec.agents)
        out = []
        for name in names:
            stream = keys.dlq_stream(self.spec.name, name)
            for p in range(self.spec.partitions):
                key = keys.stream_key(stream, self.spec.name, p, self.spec.partitions)
                for eid, fields in read_range(self.redis, key):
                    out.append(_dead_letter(name, eid, fields))
        return out

    def stats(self) -> dict[str, list[Stats]]:
        """Counters of every worker, by agent."""
        out: dict[str, list[Stats]] = {}
        for w in self.workers:
            out.setdefault(w.spec.name, []).append(w.stats)
        return out

    # -- waiting ------------------------------------------------------------------------

    def settle(self, timeout: float = 30.0, *, open_joins_after: float | None = None) -> bool:
        """Wait until nothing is in flight: no entry waiting or pending in any group, no
        handler running, worker counters steady, and no join waiting for parts. False
        on timeout; HarnessError when a worker died.

        A join still open when everything else has been quiet for ``open_joins_after``
        seconds waits for a part that nothing will deliver any more (it would only end
        at its join timeout); with that argument, settle returns True then instead.
        """
        deadline = time.monotonic() + timeout
        since, last = time.monotonic(), self._progress()
        while time.monotonic() < deadline:
            if self.errors:
                raise HarnessError("; ".join(self.errors))
            now, groups, joins = self._progress(), *self._state()
            if now != last or self.tap.active or groups:
                since, last = time.monotonic(), now
            quiet_for = time.monotonic() - since
            if quiet_for >= STEADY and not joins:
                return True
            if open_joins_after is not None and quiet_for >= open_joins_after:
                return True
            time.sleep(0.02)
        return False

    def _progress(self) -> tuple[int, ...]:
        """Every worker counter summed: any change means something is still moving."""
        return tuple(
            sum(getattr(w.stats, f.name) for w in self.workers) for f in dataclasses.fields(Stats)
        )

    def quiet(self) -> bool:
        """No group has entries undelivered or pending, and no join waits for parts."""
        groups, joins = self._state()
        return not groups and not joins

    def _state(self) -> tuple[int, int]:
        """(entries waiting or pending in some group, joins waiting for parts)."""
        pipe = self.redis.pipeline(transaction=False)
        group_keys = [
            key
            for a in self.spec.agents.values()
            for s in a.reads
            for key in stream_keys(self.spec, s)
        ]
        for key in group_keys:
            pipe.xinfo_groups(key)
        for key in self._deadline_keys():
            pipe.zcard(key)
        replies = pipe.execute()
        busy = sum(
            int(g["pending"]) + group_lag(self.redis, key, g)
            for key, groups in zip(group_keys, replies, strict=False)
            for g in groups
        )
        return busy, sum(int(n) for n in replies[len(group_keys) :])

    def forget_joins(self) -> int:
        """Delete every join's state: "done" markers (so a later task may reuse a join
        key), open joins and their deadlines. Call when settled. Returns keys deleted."""
        found = [
            key
            for name, a in self.spec.agents.items()
            if a.join is not None
            for what in ("done", "join")
            for key in self.redis.scan_iter(match=f"{self.spec.name}:{name}:{what}:*", count=1000)
        ]
        found += [k for k in self._deadline_keys() if self.redis.exists(k)]
        return int(self.redis.delete(*found)) if found else 0

    def _deadline_keys(self) -> list[str]:
        m = self.spec
        return [
            keys.private_key(m.name, name, "join-deadlines", p, m.partitions)
            for name, a in m.agents.items()
            if a.join is not None
            for p in range(m.partitions)
        ]


def _dead_letter(agent: str, eid: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    e = decode_entry(eid, fields)

    def text(name: bytes) -> str:
        return fields.get(name, b"").decode("utf-8", "replace")

    return DeadLetter(
        agent,
        text(b"source_stream"),
        text(b"source_id"),
        e["trace"],
        text(b"error"),
        int(text(b"deliveries") or 0),
        e["data"],
    )
