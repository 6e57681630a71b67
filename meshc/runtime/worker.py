"""The worker of one agent replica (docs/design.md, "Runtime semantics").

Its unit of work is the call. A reader keeps a window of ``policy.concurrency`` calls
in flight (``window``), reading more as soon as calls finish; each finished call is
committed at once by the COMMIT script (XACK the input; only if that acknowledged it,
XADD the outputs), and calls that finish while a commit travels share the next one
(``commit``). So a slow call delays nobody else, and a fast handler still pays one
round trip per burst, not per message. Timers beside the reader keep long calls'
entries fresh (``keepalive``), take back failed and abandoned entries (``reader``),
end calls at their deadline (``calls``) and sweep joins. After a crash the worker's
successor first re-runs what it held (``recovery``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from meshc.runtime import cluster, health, keys, replicas, scripts
from meshc.runtime.builtins import BUILTINS, Bound, WorkerBuiltin, fanout, merge
from meshc.runtime.calls import make_runner
from meshc.runtime.commit import CommitBatch, Flusher
from meshc.runtime.context import Call, Context
from meshc.runtime.errors import ConfigError, PermanentError
from meshc.runtime.join import JoinEngine
from meshc.runtime.reader import Reader
from meshc.runtime.recovery import Recovery, Verdict
from meshc.runtime.replica import Stats, default_consumer, served
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.transport import TRANSIENT, is_busy, make_client
from meshc.runtime.window import Window
from meshc.runtime.wire import (
    DATA,
    Delivery,
    dlq_fields,
    short_error,
    text,
    took_ms,
)
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

ClientFactory = Callable[[str], Redis]
TICK = 0.05  # seconds between timer rounds
DLQ_DATA = 65_536  # bytes of an oversized payload kept in its dead letter
EXIT_STUCK = 3  # exit code when handler threads are stuck past their deadline


def resolve_handler(spec: AgentSpec, handler: Callable[..., Any] | None) -> Callable[..., Any]:
    """The handler to run: the given one, else a built-in by name, else the role default."""
    if handler is not None:
        return handler
    if spec.handler in BUILTINS:
        return BUILTINS[spec.handler]
    if spec.role == "coordinator":
        return fanout
    if spec.role == "aggregator":
        return merge
    raise ConfigError(f"agent {spec.name!r}: no handler given and {spec.handler!r} is no built-in")


class Worker:
    """One replica of one agent; drive it with ``await run()``, end it with ``request_stop()``.

    ``recover`` says the previous process under this consumer name died holding work
    (its supervisor knows); ``on_ready`` is called once the groups exist.
    """

    def __init__(
        self,
        mesh: MeshSpec,
        agent: str,
        handler: Callable[..., Any] | None,
        *,
        redis_url: str,
        consumer: str | None = None,
        partitions: Sequence[int] | None = None,
        stop: threading.Event | None = None,
        block_ms: int = 200,
        client_factory: ClientFactory = make_client,
        recover: bool = False,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        if agent not in mesh.agents:
            raise ConfigError(f"mesh {mesh.name!r} has no agent {agent!r}")
        self.mesh = mesh
        self.spec = spec = mesh.agents[agent]
        self.policy = policy = spec.policy
        self.log = logging.getLogger(f"meshc.worker.{agent}")
        self.consumer = consumer or default_consumer()
        self.partitions = served(mesh, partitions)
        self.stats = Stats()
        self.redis_url = redis_url
        self.exit_code = 0
        self._stop = stop or threading.Event()
        self._block_ms = max(1, block_ms)
        self._client_factory = client_factory
        self._recover = recover
        self._on_ready = on_ready
        self._keys: dict[tuple[str, int], bytes] = {}
        self.in_models = {s: _model(mesh, s, agent) for s in spec.reads}
        self.out_models = {s: _model(mesh, s, agent) for s in spec.writes}
        self.inputs = {self.key(s, p): (s, p) for s in spec.reads for p in self.partitions}
        self.dlq_keys = {
            p: keys.stream_key(
                keys.dlq_stream(mesh.name, agent), mesh.name, p, mesh.partitions
            ).encode()
            for p in self.partitions
        }
        self.handler = resolve_handler(spec, handler)
        self.window = Window(policy.concurrency, policy.batch, policy.visibility_timeout)
        self.max_stuck = max(4, policy.concurrency)
        # Entries per read: a batch, or as many as the window holds calls, so a worker
        # with a thousand calls in flight refills them in a few round trips, not tens.
        self.read_max = max(policy.batch, policy.concurrency)
        self.header: tuple[bytes, ...] = ()  # fields every output carries (name value ...)
        self._head = (agent.encode(), agent.encode(), len(self.header) // 2, *self.header)
        self.commits: Flusher[CommitBatch] = Flusher(
            lambda: CommitBatch(self._head), self.send_commit, self.fail
        )
        self.joiner = JoinEngine(self) if spec.role == "aggregator" else None
        if cluster.is_cluster_url(redis_url):  # one partition would make commits cross slots
            cluster.require_partitions(mesh, redis_url)
            self.reader: Reader = cluster.ClusterReader(
                agent, self.consumer, self.inputs, policy, self.log, redis_url
            )
        else:
            self.reader = Reader(agent, self.consumer, self.inputs, policy, self.log)
        self.replica_wait = replicas.ReplicaWait.from_env()  # MESHC_WAIT_REPLICAS
        self.heartbeat = health.Heartbeat.from_env()  # MESHC_HEALTH_FILE, for probes
        self.client: Redis | None = None
        self.bound: Bound | None = None
        handler = self.handler
        if isinstance(handler, WorkerBuiltin):  # built-ins check their settings here
            self.bound = handler.bind(self)
            handler = self.bound
        self.runner = make_runner(
            handler, policy.concurrency, policy.timeout, self._done, self.spec.name
        )
        self._held: dict[tuple[bytes, bytes], float] = {}  # (key, id) -> when read
        self._waiters: dict[tuple[bytes, bytes], asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._due = {"retry": 0.0, "keepalive": 0.0}
        self._closed = False
        self._outage = False  # a server error was seen; refresh held entries first
        self._fatal: BaseException | None = None
        self._suspects: asyncio.Task[None] | None = None
        self._idle_seen: set[tuple[bytes, bytes, str]] = set()  # at the last retry scan

    def key(self, stream: str, partition: int) -> bytes:
        """The key of a stream in a partition (memoised: it is on the hot path)."""
        key = self._keys.get((stream, partition))
        if key is None:
            m = self.mesh
            key = keys.stream_key(stream, m.name, partition, m.partitions).encode()
            self._keys[(stream, partition)] = key
        return key

    def request_stop(self) -> None:
        """Stop reading; what is held is finished and committed. Thread-safe."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def redis(self) -> Redis:
        assert self.client is not None, "the worker is not running"
        return self.client

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until stopped. Transient server errors are retried, not raised."""
        self.client = self._client_factory(self.redis_url)
        timers: asyncio.Task[None] | None = None
        try:
            await self._patiently(self.reader.create_groups, "creating the consumer groups")
            if self._on_ready is not None:
                self._on_ready()
            self.log.info("consumer %s serving partitions %s", self.consumer, self.partitions)
            timers = asyncio.create_task(self._timers())
            if self._recover:
                self._due["retry"] = float("inf")  # other replicas' entries: after recovery
                await self._patiently(self._recover_held, "recovering held entries")
                self._due["retry"] = 0.0
            await self._read_loop()
            await self._drain()
            if self._fatal is not None:
                raise self._fatal
            self.log.info("stopped: %s", self.stats)
        finally:
            self._closed = True
            if timers is not None:
                await timers
            await self.runner.aclose()
            for task in list(self._tasks):
                task.cancel()
            if self.bound is not None:
                await self.bound.aclose()
            await self.client.aclose()

    async def _patiently(self, step: Callable[[Redis], Awaitable[Any]], what: str) -> None:
        """Run ``step``, waiting out a server that is not up yet (or restarting)."""
        backoff = 0.05
        while not self.stopping:
            try:
                await step(self.redis)
                return
            except TRANSIENT as exc:
                self.log.warning("%s: server unavailable (%s); retrying in %.2f s",
                                 what, exc, backoff)  # fmt: skip
            except ResponseError as exc:
                if not is_busy(exc):
                    raise
                self.log.warning("%s: server busy (%s); retrying in %.2f s", what, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _read_loop(self) -> None:
        """Read whenever the window has room; hand every entry over at once."""
        backoff = 0.05
        while not self.stopping:
            try:
                room = await self.window.room(self._block_ms / 1000)
                if room < self.window.low_water or self.stopping:
                    continue
                self.reader.count = min(room, self.read_max)
                got = await self.reader.read(self.redis, self._block_ms)
                self.dispatch(got)
                backoff = 0.05
            except TRANSIENT as exc:
                self._outage = True
                self.log.warning("server unavailable (%s); retrying in %.2f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self.log.warning("a consumer group vanished; creating it again")
                    await self.reader.create_groups(self.redis)
                elif is_busy(exc):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                else:
                    raise
        self.dispatch(await self.reader.drain())  # reads still in flight

    async def _timers(self) -> None:
        """Deadlines and keepalives until the worker closes; retries and join sweeps
        until it stops reading. Never blocked by a handler (suspects run beside it)."""
        backoff = 0.05
        while not self._closed:
            self.heartbeat.beat()
            now = time.monotonic()
            self.runner.expire(now)
            self._check_stuck()
            try:
                if self._outage:
                    await self._after_outage(now)
                if now >= self._due["keepalive"]:
                    await self._keepalive(now)
                if not self.stopping and now >= self._due["retry"]:
                    await self._retry_due()
                if not self.stopping and self.joiner is not None and now >= self.joiner.sweep_at:
                    await self.joiner.sweep()
                backoff = 0.05
            except TRANSIENT as exc:
                self._outage = True
                self.log.warning("server unavailable (%s); retrying in %.2f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            await asyncio.sleep(TICK)

    async def _after_outage(self, now: float) -> None:
        """The server is back. Its clock kept running, so every entry held here now
        looks idle for the whole outage: refresh them all at once, and look for other
        replicas' idle entries only a little later, after they have refreshed theirs,
        or live workers would take each other's work."""
        await self._keepalive(now, every=True)
        self._due["retry"] = now + max(0.05, self.policy.visibility_timeout / 2)
        self._outage = False

    async def _drain(self) -> None:
        """Finish what is held (deadlines bound it) and commit it."""
        while self.window.busy > 0 and self._fatal is None:
            self.runner.expire(time.monotonic())
            await asyncio.sleep(0.01)
        if self._fatal is not None:
            return
        await self.commits.wait()
        if self.joiner is not None:
            await self.joiner.wait()

    def _check_stuck(self) -> None:
        stuck = self.runner.stuck
        if stuck >= self.max_stuck and not self.stopping:
            self.log.error(
                "%d handler calls are stuck past their timeout of %s s and cannot be "
                "stopped; finishing the rest and exiting so that a fresh process takes over",
                stuck,
                self.policy.timeout,
            )
            self.stats.stuck_exits += 1
            self.exit_code = EXIT_STUCK
            self.request_stop()
            self.spawn(self._record_stuck(stuck))

    async def _record_stuck(self, stuck: int) -> None:
        """Say it where ``meshc status`` looks: the agent's health hash."""
        m, p = self.mesh, self.partitions[0]
        key = keys.private_key(m.name, self.spec.name, "health", p, m.partitions)
        note = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {self.consumer}: "
            f"{stuck} calls stuck past their {self.policy.timeout} s timeout; "
            "exited for a fresh process"
        )
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(key, "stuck_exits", 1)
        pipe.hset(key, "last_stuck", note)
        try:
            await pipe.execute()
        except TRANSIENT as exc:
            self.log.warning("could not record the exit in %s: %s", key, exc)

    # -- entries in -----------------------------------------------------------------

    def dispatch(self, deliveries: list[Delivery]) -> None:
        """Take ``deliveries`` into the window and start their calls."""
        if not deliveries:
            return
        now = time.monotonic()
        held = self._held
        for d in deliveries:
            held[(d.key, d.entry_id)] = now
        self.window.take(len(deliveries))
        self.stats.read += len(deliveries)
        if self.joiner is not None:
            self.joiner.accept(deliveries)
            return
        calls = []
        for d in deliveries:
            payload = self.admit(d)
            if payload is not None:
                calls.append(Call(payload, self.context(d), self._finished, d))
        self.runner.start(calls)

    def context(self, d: Delivery) -> Context:
        return Context(
            self.spec,
            self.out_models,
            self.log,
            trace=d.trace.decode(),
            entry_id=d.entry_id.decode(),
            attempt=d.attempt,
            stream=d.stream,
            partition=d.partition,
        )

    def admit(self, d: Delivery) -> BaseModel | None:
        """The validated payload, or None after queuing a dead letter or a bare ack
        (the entry is then finished: only its commit is left)."""
        payload = self._admit(d)
        if payload is None:
            self.window.finish(1)
        return payload

    def _admit(self, d: Delivery) -> BaseModel | None:
        data = d.fields.get(DATA)
        if data is None:
            if d.fields:
                self.dead_letter(d, "entry has no `data` field (the payload's JSON)")
            else:
                self.log.warning("entry %s of %s was trimmed away; acknowledging it",
                                 text(d.entry_id), text(d.key))  # fmt: skip
                self.commits.open().entries(d, ())
            return None
        problem = d.header_problem()
        if problem is not None:
            self.dead_letter(d, problem)
            return None
        if d.attempt > self.policy.max_deliveries and not d.recovered:
            error = (
                f"delivered {d.attempt} times, more than max_deliveries="
                f"{self.policy.max_deliveries}; its handler never finished"
            )
            self.dead_letter(d, error, deliveries=d.attempt - 1)
            return None
        if len(data) > self.policy.max_payload_bytes:
            error = f"payload of {len(data)} bytes exceeds {self.policy.max_payload_bytes}"
            self.dead_letter(d, error, max_data=DLQ_DATA)
            return None
        model = self.in_models[d.stream]
        try:  # the core validator directly: model_validate_json's wrapper cost 40% more
            return model.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            self.dead_letter(d, f"invalid {model.__name__} payload: {exc}")
            return None

    # -- calls out ------------------------------------------------------------------

    def _done(self, call: Call) -> None:
        """Every finished call comes here; a handler that raised ``SystemExit`` (or
        another ``BaseException``) ends the worker as it would end a process: its entry
        stays pending, unacknowledged, and the worker stops."""
        error = call.error
        if error is not None and not isinstance(error, Exception):
            self.window.finish(1)
            self.window.release(1)
            self.fail(error)
            return
        assert call.then is not None
        call.then(call)

    def _finished(self, call: Call) -> None:
        d: Delivery = call.tag
        self.window.finish(1)
        self.window.observe(call.took)
        if call.error is None:
            try:
                outputs = call.ctx.collect(call.result)
            except Exception as exc:
                call.error = exc
            else:
                keyed = [(self.key(s, d.partition), data) for s, data in outputs]
                own = self.own_fields(d, call.ctx)
                self.commits.open().outputs(d, keyed, took_ms(call.took), own)
                return
        self.failed(d, call.error)

    def own_fields(self, d: Delivery, ctx: Context) -> list[bytes]:
        """Header fields the outputs of ``d`` carry besides the standard ones: what the
        handler added (``ctx.add_header``: LLM accounting, ...). Empty for most calls,
        which then take the commit's fast path."""
        if not ctx.header:
            return []
        return [x.encode() for name, value in ctx.header.items() for x in (name, value)]

    def failed(self, d: Delivery, error: BaseException) -> None:
        """Hand the entry to the retry consumer, or dead-letter it on its last attempt
        (at once for a ``PermanentError``: delivering it again cannot help)."""
        self.stats.failed += 1
        last = d.attempt >= self.policy.max_deliveries or isinstance(error, PermanentError)
        self.log.warning(
            "handler failed on %s %s (attempt %d of %d)%s: %s",
            d.stream,
            text(d.entry_id),
            d.attempt,
            self.policy.max_deliveries,
            "; dead-lettering" if last else "",
            short_error(error),
            exc_info=error,
        )
        if last:
            self.dead_letter(d, short_error(error))
        else:
            self.commits.open().park(d, self.consumer)

    def dead_letter(
        self, d: Delivery, error: str, deliveries: int | None = None, max_data: int | None = None
    ) -> None:
        """Queue: ack ``d`` and, only if that counted, add it to this agent's DLQ."""
        self.stats.dead_lettered += 1
        self.log.error("dead letter %s %s: %s", d.stream, text(d.entry_id), error[:300])
        limit = self.policy.max_payload_bytes if max_data is None else max_data
        fields = dlq_fields(d, self.spec.name, error, deliveries or d.attempt, limit)
        self.commits.open().entries(d, [(self.dlq_keys[d.partition], fields)])

    async def send_commit(self, batch: CommitBatch) -> None:
        """Write one batch of COMMIT records and settle its entries."""
        replies = await self.retrying(scripts.commit, batch.calls())
        for acked, skipped in replies:
            self.stats.committed += int(acked)
            self.stats.duplicates += int(skipped)
            if skipped:
                self.log.info("%d inputs were acknowledged elsewhere first; their "
                              "outputs were not written again", skipped)  # fmt: skip
        self.settled(batch.settled)

    def settled(self, entries: list[tuple[bytes, bytes]]) -> None:
        """``entries`` are written (or handed on): their place in the window is free."""
        held, waiters = self._held, self._waiters
        for pair in entries:
            held.pop(pair, None)
            if waiters:
                waiter = waiters.pop(pair, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        self.window.release(len(entries))

    async def retrying(
        self, script: scripts.Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        """Run idempotent script calls, riding out a loss of the server (or a busy one)."""
        delay = 0.05
        while True:
            try:
                if self.replica_wait:
                    return await self.replica_wait.many(script, self.redis, calls)
                return await script.many(self.redis, calls)
            except TRANSIENT as exc:
                self._outage = True
                self.log.warning("commit failed (%s); retrying in %.2f s", exc, delay)
            except ResponseError as exc:
                if not is_busy(exc):
                    raise
                self.log.warning("server busy (%s); retrying in %.2f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def hold(self, n: int) -> None:
        self.window.take(n)

    def finish(self, n: int) -> None:
        self.window.finish(n)

    def release(self, n: int) -> None:
        self.window.release(n)

    def start(self, calls: list[Call]) -> None:
        self.runner.start(calls)

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` beside the loop; an error in it ends the worker."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())  # type: ignore[arg-type]

    def fail(self, error: BaseException) -> None:
        """A failure the worker cannot go on after: stop, and raise it from ``run``."""
        if self._fatal is None:
            self._fatal = error
            self.log.error("stopping on an error: %s", short_error(error))
        self.request_stop()

    # -- timers ---------------------------------------------------------------------

    async def _keepalive(self, now: float, every: bool = False) -> None:
        """Reset the idle time of entries held longer than a third of the visibility
        timeout (``every``: of all held), so no other replica takes them while this one
        works on them."""
        vt = self.policy.visibility_timeout
        self._due["keepalive"] = now + max(0.05, vt / 3)
        old = now if every else now - vt / 3
        by_part: dict[int, scripts.ScriptCall] = {}
        refreshed = []
        for pair, since in self._held.items():
            if since > old:
                break  # insertion order: the rest is younger
            key, eid = pair
            p = self.inputs[key][1]
            call = by_part.get(p)
            if call is None:
                call = by_part[p] = scripts.ScriptCall((self.spec.name, self.consumer))
            call.args += (call.key(key), 1, eid)
            refreshed.append(pair)
        if not by_part:
            return
        lost = await scripts.keepalive.many(
            self.redis, [(c.keys, c.args) for c in by_part.values()]
        )
        gone = sum(len(x) for x in lost)
        if gone:
            self.log.warning(
                "%d entries in work here were taken over by another replica (this worker "
                "was stalled); whichever commits first wins",
                gone,
            )
        for pair in refreshed:
            if self._held.pop(pair, None) is not None:
                self._held[pair] = now  # to the young end

    async def _retry_due(self) -> None:
        """Take back failed entries whose retry is due (many at once) and idle entries of
        other consumers (one at a time, each committed before the next: see ``reader``).

        Another consumer's entry is taken only when two scans in a row found it idle
        with the same owner: a live owner refreshes its entries within a third of the
        visibility timeout, so one sighting may only mean the server restarted and
        its clock ran on through the outage (every entry then looks idle at once)."""
        vt = self.policy.visibility_timeout
        self._due["retry"] = time.monotonic() + max(0.05, vt / 2)
        idle_ms = int(vt * 1000)
        rows = await self.reader.pending(self.redis, None, idle_ms, self.policy.batch)
        retries: dict[bytes, list[tuple[bytes, int]]] = {}
        idle: list[tuple[bytes, bytes, int]] = []
        seen, self._idle_seen = self._idle_seen, set()
        for key, eid, owner, n in rows:
            if owner == scripts.RETRY_CONSUMER:
                retries.setdefault(key, []).append((eid, n))
            elif owner != self.consumer:  # this consumer's own: what recovery runs
                self._idle_seen.add((key, eid, owner))
                if (key, eid, owner) in seen:
                    idle.append((key, eid, n))
        for key, group in retries.items():
            if self.stopping:
                return
            room = max(0, self.window.free)
            got = await self.reader.claim(self.redis, key, group[:room], idle_ms, count=True)
            self.dispatch(got)
        if idle and (self._suspects is None or self._suspects.done()):
            self._suspects = asyncio.create_task(self._take_idle(idle, idle_ms))
            self._tasks.add(self._suspects)
        if len(rows) >= self.policy.batch:
            self._due["retry"] = 0.0  # more are waiting

    async def _take_idle(self, idle: list[tuple[bytes, bytes, int]], idle_ms: int) -> None:
        """Run idle entries of other consumers one at a time, each settled before the
        next is taken over, so one that kills this worker takes no other with it."""
        try:
            for key, eid, n in idle:
                if self.stopping:
                    return
                got = await self.reader.claim(self.redis, key, [(eid, n)], idle_ms, count=True)
                await self.settle_all(got)
        except TRANSIENT as exc:
            self.log.warning("server unavailable while retrying idle entries (%s)", exc)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)

    async def settle_all(self, deliveries: list[Delivery]) -> None:
        """Dispatch ``deliveries`` and wait until every one of them is settled."""
        if not deliveries:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for d in deliveries:
            future = self._waiters[(d.key, d.entry_id)] = loop.create_future()
            futures.append(future)
        self.dispatch(deliveries)
        await asyncio.gather(*futures)

    # -- recovery -------------------------------------------------------------------

    async def _recover_held(self, r: Redis) -> None:
        recovery = Recovery(
            self.mesh, self.spec.name, self.consumer, self.reader, self.partitions,
            self.policy.concurrency, self.log,
        )  # fmt: skip
        n = await recovery.run(r, self.settle_all, self._killer)
        if n:
            self.stats.recovered += n
            self.log.info("recovered %d entries", n)

    async def _killer(self, verdict: Verdict) -> None:
        d = verdict.delivery
        error = (
            f"its worker process died {verdict.deaths} times while handling it alone "
            "(killed, out of memory, or a crash in native code)"
        )
        self._held[(d.key, d.entry_id)] = time.monotonic()
        self.window.take(1)
        self.window.finish(1)
        self.dead_letter(d, error)
        await self.commits.wait()


def _model(mesh: MeshSpec, stream: str, agent: str) -> type[BaseModel]:
    if stream not in mesh.streams:
        raise ConfigError(f"agent {agent!r} names undeclared stream {stream!r}")
    return mesh.streams[stream].model
