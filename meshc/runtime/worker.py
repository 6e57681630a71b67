"""The worker loop of one agent replica (DESIGN.md section 5).

One asyncio task does everything in order: reclaim idle entries when due, read a
batch (XREADGROUP across every input stream x served partition), validate, run the
handlers, and commit the whole batch with one COMMIT script per partition (XACK each
input; only if that acknowledged it, XADD its outputs). Keeping one batch in flight
makes shutdown simple (finish the batch, commit, return) and the hot path lean: two
round trips per batch, none per message. Concurrency lives inside a batch
(``policy.concurrency`` handler lanes), not across batches, so a slow message delays
its batch's commit but never another replica: idle entries are reclaimed by whoever
is free, and the XACK gate drops the outputs of the loser of that race.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meshc.runtime import cluster, health, keys, replicas, scripts
from meshc.runtime.builtins import BUILTINS, Bound, WorkerBuiltin, fanout, merge
from meshc.runtime.context import Call, Context
from meshc.runtime.errors import ConfigError, PermanentError
from meshc.runtime.execute import Executor
from meshc.runtime.join import JoinEngine
from meshc.runtime.reader import Reader
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.transport import make_client
from meshc.runtime.wire import (
    AGENT,
    ATTEMPT,
    DATA,
    PARENT,
    TRACE,
    Delivery,
    dlq_fields,
    short_error,
    text,
)
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    *cluster.TRANSIENT_ERRORS,  # a failover, seen from a cluster client
)
ClientFactory = Callable[[str], Redis]


def default_consumer() -> str:
    """A consumer name unique per replica, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


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


@dataclass
class Stats:
    """Counters of one worker, for logs and tests."""

    read: int = 0
    committed: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    late: int = 0
    joins_emitted: int = 0


class Worker:
    """One replica of one agent; drive it with ``await run()``, end it with ``request_stop()``."""

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
    ) -> None:
        if agent not in mesh.agents:
            raise ConfigError(f"mesh {mesh.name!r} has no agent {agent!r}")
        self.mesh = mesh
        self.spec = spec = mesh.agents[agent]
        self.policy = spec.policy
        self.log = logging.getLogger(f"meshc.worker.{agent}")
        self.consumer = consumer or default_consumer()
        self.partitions = _served(mesh, partitions)
        self.stats = Stats()
        self.redis_url = redis_url
        self._stop = stop or threading.Event()
        self._block_ms = max(1, block_ms)
        self._client_factory = client_factory
        self._group = agent.encode()
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
        chosen = resolve_handler(spec, handler)
        self.bound: Bound | None = chosen.bind(self) if isinstance(chosen, WorkerBuiltin) else None
        self.executor = Executor(self.bound or chosen, self.policy, agent)
        self.joiner = JoinEngine(self) if spec.role == "aggregator" else None
        on_cluster = cluster.is_cluster_url(redis_url)
        if on_cluster:  # one partition would make every commit cross slots
            cluster.require_partitions(mesh, redis_url)
        self.reader = (
            cluster.ClusterReader(
                agent, self.consumer, self.inputs, self.policy, self.log, redis_url
            )
            if on_cluster
            else Reader(agent, self.consumer, self.inputs, self.policy, self.log)
        )
        self.replica_wait = replicas.ReplicaWait.from_env()  # MESHC_WAIT_REPLICAS
        self.heartbeat = health.Heartbeat.from_env()  # MESHC_HEALTH_FILE, for probes
        self.client: Redis | None = None

    def key(self, stream: str, partition: int) -> bytes:
        """The key of a stream in a partition (memoised: it is on the hot path)."""
        key = self._keys.get((stream, partition))
        if key is None:
            m = self.mesh
            key = keys.stream_key(stream, m.name, partition, m.partitions).encode()
            self._keys[(stream, partition)] = key
        return key

    def request_stop(self) -> None:
        """Stop reading; the batch in flight is finished and committed. Thread-safe."""
        self._stop.set()

    @property
    def redis(self) -> Redis:
        assert self.client is not None, "the worker is not running"
        return self.client

    async def run(self) -> None:
        """Serve until stopped. Transient server errors are retried, not raised."""
        self.client = self._client_factory(self.redis_url)
        try:
            await self._create_groups()
            self.log.info("consumer %s serving partitions %s", self.consumer, self.partitions)
            backoff = 0.05
            while not self._stop.is_set():
                self.heartbeat.beat()
                try:
                    await self._tick()
                    backoff = 0.05
                except TRANSIENT as exc:
                    self.log.warning("server unavailable (%s); retrying in %.2f s", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    self.log.warning("a consumer group vanished; creating it again")
                    await self.reader.create_groups(self.redis)
            await self.handle(await self.reader.drain())  # reads still in flight
            self.log.info("stopped: %s", self.stats)
        finally:
            self.executor.close()
            if self.bound is not None:
                await self.bound.aclose()
            await self.client.aclose()

    async def _create_groups(self) -> None:
        """Create the groups, waiting out a server that is not up yet (or restarting)."""
        backoff = 0.05
        while not self._stop.is_set():
            try:
                await self.reader.create_groups(self.redis)
                return
            except TRANSIENT as exc:
                self.log.warning("server unavailable (%s); retrying in %.2f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _tick(self) -> None:
        if time.monotonic() >= self.reader.reclaim_at:
            await self._reclaim()
        if self.joiner is not None and time.monotonic() >= self.joiner.sweep_at:
            await self.joiner.sweep()
        if not self._stop.is_set():
            await self.handle(await self.reader.read(self.redis, self._block()))

    async def _reclaim(self) -> None:
        """Retry idle entries one at a time, each claimed right before it runs and
        committed before the next, so a message that kills its worker takes no other
        message's deliveries with it (see ``reader``)."""
        taken = 0
        for key, entry_id in await self.reader.reclaim(self.redis):
            if self._stop.is_set():
                break
            d = await self.reader.take(self.redis, key, entry_id)
            if d is not None:
                taken += 1
                await self.handle([d])
        if taken:
            self.log.info("reclaimed %d idle entries", taken)

    def _block(self) -> int:
        """Block no longer than the next periodic job, so timers stay on time."""
        due = self.reader.reclaim_at
        if self.joiner is not None:
            due = min(due, self.joiner.sweep_at)
        return max(1, min(self._block_ms, int((due - time.monotonic()) * 1000)))

    async def handle(self, deliveries: list[Delivery]) -> None:
        """Validate, run and commit one batch."""
        if not deliveries:
            return
        self.stats.read += len(deliveries)
        if self.joiner is not None:
            await self.joiner.handle(deliveries)
            return
        batch = self.new_batch()
        admitted = [(d, p) for d in deliveries if (p := self.admit(d, batch)) is not None]
        pending = [(d, Call(payload, self.context(d))) for d, payload in admitted]
        started = time.monotonic()
        await self.executor.run([call for _, call in pending])
        self._tune(len(pending), time.monotonic() - started)
        for d, call in pending:
            self._settle(d, call, batch)
        await self.commit(batch)

    def _tune(self, calls: int, elapsed: float) -> None:
        """Read fewer entries at a time when handlers are slow.

        A batch commits only when its last handler returns, so a big batch of slow
        calls would sit unacknowledged past ``visibility_timeout`` and be reclaimed
        (and run again) elsewhere. Aim for batches that take at most ``min(1 s,
        visibility_timeout / 4)``; fast handlers keep the full ``policy.batch``.
        """
        if calls == 0:
            return
        lanes = self.executor.concurrency
        per_call = elapsed * min(lanes, calls) / calls
        target = min(1.0, self.policy.visibility_timeout / 4)
        fits = int(target * lanes / per_call) if per_call > 0 else self.policy.batch
        self.reader.count = max(lanes, min(self.policy.batch, fits))

    def new_batch(self) -> scripts.CommitBatch:
        return scripts.CommitBatch(self._group, self._group)

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

    def admit(self, d: Delivery, batch: scripts.CommitBatch) -> BaseModel | None:
        """The validated payload, or None after queuing a dead letter or a bare ack."""
        data = d.fields.get(DATA)
        if data is None:
            if d.fields:
                self.dead_letter(d, "entry has no 'data' field", batch)
            else:
                self.log.warning(
                    "entry %s of %s was trimmed away; acknowledging it",
                    text(d.entry_id),
                    text(d.key),
                )
                batch.entries(d, ())
            return None
        if d.attempt > self.policy.max_deliveries:
            error = (
                f"delivered {d.attempt} times, more than max_deliveries="
                f"{self.policy.max_deliveries}; its handler never finished"
            )
            self.dead_letter(d, error, batch, deliveries=d.attempt - 1)
            return None
        if len(data) > self.policy.max_payload_bytes:
            error = f"payload of {len(data)} bytes exceeds {self.policy.max_payload_bytes}"
            self.dead_letter(d, error, batch)
            return None
        model = self.in_models[d.stream]
        try:  # the core validator directly: model_validate_json's wrapper cost 40% more
            return model.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            self.dead_letter(d, f"invalid {model.__name__} payload: {exc}", batch)
            return None

    def _settle(self, d: Delivery, call: Call, batch: scripts.CommitBatch) -> None:
        if call.error is None:
            try:
                outputs = call.ctx.collect(call.result)
            except Exception as exc:
                call.error = exc
            else:
                keyed = [(self.key(s, d.partition), data) for s, data in outputs]
                if call.ctx.header:  # extra header fields (e.g. LLM accounting)
                    extra = call.ctx.header
                    batch.entries(d, [(k, self._fields(d, data, extra)) for k, data in keyed])
                else:
                    batch.outputs(d, keyed)
                return
        self.failed(d, call.error, batch)

    def _fields(self, d: Delivery, data: bytes, extra: dict[str, str]) -> list[bytes]:
        """An output's fields: the standard header (as COMMIT writes it) plus ``extra``."""
        fields = [DATA, data, TRACE, d.trace, PARENT, d.entry_id, AGENT, self.spec.name.encode()]
        fields += [ATTEMPT, str(d.attempt).encode()]
        for name, value in extra.items():
            fields += [name.encode(), value.encode()]
        return fields

    def failed(self, d: Delivery, error: BaseException, batch: scripts.CommitBatch) -> None:
        """Leave the entry pending for a retry, or dead-letter it on its last attempt
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
            self.dead_letter(d, short_error(error), batch)

    def dead_letter(
        self, d: Delivery, error: str, batch: scripts.CommitBatch, deliveries: int | None = None
    ) -> None:
        """Queue: ack ``d`` and, only if that counted, add it to this agent's DLQ."""
        self.stats.dead_lettered += 1
        self.log.error("dead letter %s %s: %s", d.stream, text(d.entry_id), error[:300])
        fields = dlq_fields(d, self.spec.name, error, deliveries or d.attempt)
        batch.entries(d, [(self.dlq_keys[d.partition], fields)])

    async def commit(self, batch: scripts.CommitBatch) -> None:
        """Run the batch's COMMIT calls; retried on a lost connection (they are idempotent)."""
        if not batch:
            return
        replies = await self.retrying(scripts.commit, batch.calls())
        for acked, skipped in replies:
            self.stats.committed += int(acked)
            self.stats.duplicates += int(skipped)
            if skipped:
                self.log.info(
                    "%d inputs were acknowledged elsewhere first; their "
                    "outputs were not written again",
                    skipped,
                )

    async def retrying(
        self, script: scripts.Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        """Run idempotent script calls, riding out a short loss of the server."""
        delay = 0.05
        for _ in range(6):
            try:
                return await self._run_script(script, calls)
            except TRANSIENT as exc:
                self.log.warning("commit failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay *= 2
        return await self._run_script(script, calls)

    async def _run_script(
        self, script: scripts.Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        if self.replica_wait:
            return await self.replica_wait.many(script, self.redis, calls)
        return await script.many(self.redis, calls)


def _served(mesh: MeshSpec, partitions: Sequence[int] | None) -> tuple[int, ...]:
    total = max(1, mesh.partitions)
    served = tuple(partitions) if partitions is not None else tuple(range(total))
    bad = [p for p in served if not 0 <= p < total]
    if bad or not served:
        raise ConfigError(f"partitions {list(served)} outside range({total}) of mesh {mesh.name!r}")
    return served


def _model(mesh: MeshSpec, stream: str, agent: str) -> type[BaseModel]:
    if stream not in mesh.streams:
        raise ConfigError(f"agent {agent!r} names undeclared stream {stream!r}")
    return mesh.streams[stream].model


def run_agent(
    mesh: MeshSpec,
    agent: str,
    handler: Callable[..., Any] | None,
    *,
    redis_url: str,
    consumer: str | None = None,
    partitions: Sequence[int] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run one replica until SIGTERM/SIGINT or ``stop``; the process exit code.

    0 after a clean stop (or for an agent with no inputs, such as a producer), 1 when
    the worker died on an error, 2 when the spec cannot run as given.
    """
    log = logging.getLogger(f"meshc.worker.{agent}")
    stop = stop or threading.Event()
    try:
        worker = Worker(
            mesh,
            agent,
            handler,
            redis_url=redis_url,
            consumer=consumer,
            partitions=partitions,
            stop=stop,
        )
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if not worker.spec.reads:
        log.info("agent %s reads no stream; nothing to run", agent)
        return 0
    restore = _install_signals(stop, log)
    try:
        asyncio.run(worker.run())
        return 0
    except Exception:
        log.exception("worker %s stopped on an error", agent)
        return 1
    finally:
        restore()


def _install_signals(stop: threading.Event, log: logging.Logger) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop``; a second signal gets the previous behaviour back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: finishing the batch in flight", signal.Signals(signum).name)
        stop.set()
        restore()

    for sig in previous:
        signal.signal(sig, on_signal)
    return restore
