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

from meshc.runtime import cluster, keys, replicas, running, scripts, telemetry, wire
from meshc.runtime.admission import Refusal, admit
from meshc.runtime.builtins import Bound, WorkerBuiltin, resolve_handler
from meshc.runtime.calls import make_runner
from meshc.runtime.commit import CommitBatch, Flusher
from meshc.runtime.context import Call, Context
from meshc.runtime.errors import ConfigError, PermanentError
from meshc.runtime.holdings import Holdings
from meshc.runtime.join import JoinEngine
from meshc.runtime.process import health
from meshc.runtime.recovery import Recovery
from meshc.runtime.replica import EXIT_STUCK, Stats, default_consumer, record_stuck, served
from meshc.runtime.retries import Retries
from meshc.runtime.spec import MeshSpec
from meshc.runtime.taskhead import TaskHeader
from meshc.runtime.transport import TRANSIENT, Backoff, make_client, waitable
from meshc.runtime.upkeep import Upkeep
from meshc.runtime.window import Window
from meshc.runtime.wire import Delivery, dlq_fields, short_error, text, took_ms
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ResponseError

ClientFactory = Callable[[str], Redis]


class Worker:
    """One replica of one agent; drive it with ``await run()``, end it with ``request_stop()``.

    ``recover`` says the previous process under this consumer name died holding work
    (its supervisor knows); ``on_ready`` is called once the groups exist; ``group`` is
    the consumer group (default: the agent's; ``meshc replay`` gives a fresh one).
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
        group: str | None = None,
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
        dlq = keys.dlq_stream(mesh.name, agent)
        self.dlq_keys = {p: self.key(dlq, p) for p in self.partitions}
        self.handler = resolve_handler(spec, handler)
        self.window = Window(policy.concurrency, policy.batch, policy.visibility_timeout)
        self.max_stuck = max(4, policy.concurrency)
        # Entries per read: a batch, or as many calls as the window holds (few round trips)
        self.read_max = max(policy.batch, policy.concurrency)
        self.header: tuple[bytes, ...] = (wire.SCHEMA, running.schema_value(mesh, spec.writes))
        self.task_header = TaskHeader(mesh, spec)
        self.group = group or agent
        self._head = (self.group.encode(), agent.encode(), len(self.header) // 2, *self.header)
        self.telemetry = telemetry.Telemetry.from_env(mesh, spec, self.stats)  # None: off
        self.commits: Flusher[CommitBatch] = Flusher(
            lambda: CommitBatch(self._head), self.send_commit, self.fail,
            cap=max(1, self.window.backlog // 2),  # two batches can overlap
        )  # fmt: skip
        self.joiner = JoinEngine(self) if spec.role == "aggregator" else None
        self.reader = cluster.make_reader(mesh, agent, self.consumer, self.inputs, self.log,
                                          redis_url, self.group)  # fmt: skip
        self.replica_wait = replicas.ReplicaWait.from_env()  # MESHC_WAIT_REPLICAS
        self.client: Redis | None = None
        self.bound: Bound | None = None
        handler = self.handler
        if isinstance(handler, WorkerBuiltin):  # built-ins check their settings here
            self.bound = handler.bind(self)
            handler = self.bound
        self.runner = make_runner(
            handler, policy.concurrency, policy.timeout, self._done, self.spec.name
        )
        self.holdings = Holdings(self.group, self.consumer, self.inputs, self.log)
        self.retries = Retries(
            self.reader, policy, self.consumer, self.window, self.dispatch, self.settle_all,
            self.log,
        )  # fmt: skip
        self.upkeep = Upkeep(
            policy=policy, runner=self.runner, holdings=self.holdings, retries=self.retries,
            joiner=self.joiner, heartbeat=health.Heartbeat.from_env(), redis=lambda: self.redis,
            stopping=lambda: self.stopping, check=self._check_stuck, log=self.log,
        )  # fmt: skip
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fatal: BaseException | None = None

    def key(self, stream: str, partition: int) -> bytes:  # memoised: on the hot path
        key = self._keys.get((stream, partition))
        if key is None:
            m = self.mesh
            key = keys.stream_key(stream, m.name, partition, m.partitions).encode()
            self._keys[(stream, partition)] = key
        return key

    def request_stop(self) -> None:  # thread-safe: stop reading, finish and commit what is held
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
            await self._patiently(running.checker(self.mesh, self.spec), "reading the record")
            await self._patiently(self.reader.create_groups, "creating the consumer groups")
            if self._on_ready is not None:
                self._on_ready()
            self.log.info("consumer %s serving partitions %s", self.consumer, self.partitions)
            timers = asyncio.create_task(self.upkeep.run())
            if self._recover:
                self.upkeep.hold_retries(True)  # other replicas' entries: after recovery
                await self._patiently(self._recover_held, "recovering held entries")
                self.upkeep.hold_retries(False)
            await self._read_loop()
            await self._drain()
            if self._fatal is not None:
                raise self._fatal
            self.log.info("stopped: %s", self.stats)
        finally:
            self.upkeep.closed = True
            if timers is not None:
                await timers
            await self.runner.aclose()
            for task in list(self._tasks):
                task.cancel()
            self.retries.cancel()
            if self.bound is not None:
                await self.bound.aclose()
            await self.client.aclose()

    async def _patiently(self, step: Callable[[Redis], Awaitable[Any]], what: str) -> None:
        """Run ``step``, waiting out a server that is not up yet (or restarting)."""
        backoff = Backoff(self.log)
        while not self.stopping:
            try:
                await step(self.redis)
                backoff.reset()
                return
            except Exception as exc:
                if not waitable(exc):
                    raise
                await backoff.pause(f"{what}: server unavailable", exc)

    async def _read_loop(self) -> None:
        """Read whenever the window has room; hand every entry over at once."""
        backoff = Backoff(self.log)
        while not self.stopping:
            try:
                room = await self.window.room(self._block_ms / 1000)
                if room < self.window.low_water or self.stopping:
                    continue
                self.reader.count = min(room, self.read_max)
                self.dispatch(await self.reader.read(self.redis, self._block_ms))
                backoff.reset()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    if not waitable(exc):
                        raise
                    await backoff.pause("server busy", exc)
                    continue
                self.log.warning("a consumer group vanished; creating it again")
                await self.reader.create_groups(self.redis)
            except TRANSIENT as exc:
                self.upkeep.outage = True
                await backoff.pause("server unavailable", exc)
        self.dispatch(await self.reader.drain())  # reads still in flight

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
            note = (
                f"{stuck} handler calls are stuck past their timeout of "
                f"{self.policy.timeout} s and cannot be stopped"
            )
            self.log.error("%s; finishing the rest and exiting for a fresh process", note)
            self.stats.stuck_exits += 1
            self.exit_code = EXIT_STUCK
            self.request_stop()
            m = self.mesh
            key = keys.private_key(m.name, self.spec.name, "health", self.partitions[0],
                                   m.partitions)  # fmt: skip
            self.spawn(record_stuck(self.redis, key, f"{self.consumer}: {note}", self.log))

    # -- entries in -----------------------------------------------------------------

    def dispatch(self, deliveries: list[Delivery]) -> None:
        """Take ``deliveries`` into the window and start their calls."""
        if not deliveries:
            return
        self.holdings.add(deliveries, time.monotonic())
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
        payload = admit(d, self.policy, self.in_models[d.stream])
        if not isinstance(payload, Refusal):
            return payload
        self.window.finish(1)
        if payload.error is not None:
            self.dead_letter(d, payload.error, payload.deliveries, payload.max_data)
        else:
            self.log.warning("entry %s of %s was trimmed away; acknowledging it",
                             text(d.entry_id), text(d.key))  # fmt: skip
            self.commits.open().entries(d, ())
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
                own = self.own_fields(d, call.ctx, outputs)
                if self.telemetry is not None:  # the one check metrics and traces cost
                    own += self.telemetry.call(d, call, outputs)
                self.commits.open().outputs(d, keyed, took_ms(call.took), own)
                return
        if self.telemetry is not None:
            self.telemetry.call(d, call, None)
        self.failed(d, call.error)

    def own_fields(self, d: Delivery, ctx: Context, outputs: Sequence[Any] = ()) -> list[bytes]:
        """Header fields the outputs of ``d`` carry besides the standard ones: the task's
        (``taskhead``) and the handler's (``ctx.add_header``). Usually none: fast path."""
        own = ctx.header or {}
        return self.task_header.fields(d, outputs) + [x.encode() for kv in own.items() for x in kv]

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
        if self.telemetry is not None:
            self.telemetry.dead_letter(d.stream)
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
        self.holdings.settle(entries)
        self.window.release(len(entries))

    async def retrying(
        self, script: scripts.Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        """Run idempotent script calls, riding out a loss of the server (or a busy one)."""
        backoff = Backoff(self.log)
        while True:
            try:
                if self.replica_wait:
                    replies = await self.replica_wait.many(script, self.redis, calls)
                else:
                    replies = await script.many(self.redis, calls)
                backoff.reset()
                return replies
            except Exception as exc:
                if not waitable(exc):
                    raise
                self.upkeep.outage = True
                await backoff.pause("commit failed", exc)

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

    async def settle_all(self, deliveries: list[Delivery]) -> None:
        """Dispatch ``deliveries`` and wait until every one of them is settled."""
        if deliveries:
            futures = self.holdings.waiting(deliveries)
            self.dispatch(deliveries)
            await asyncio.gather(*futures)

    # -- recovery -------------------------------------------------------------------

    async def _recover_held(self, r: Redis) -> None:
        recovery = Recovery(
            self.mesh, self.spec.name, self.consumer, self.reader, self.partitions,
            self.policy.concurrency, self.log,
        )  # fmt: skip
        n = await recovery.run(r, self.settle_all)
        if n:
            self.stats.recovered += n
            self.log.info("recovered %d entries", n)


def _model(mesh: MeshSpec, stream: str, agent: str) -> type[BaseModel]:
    if stream not in mesh.streams:
        raise ConfigError(f"agent {agent!r} names undeclared stream {stream!r}")
    return mesh.streams[stream].model
