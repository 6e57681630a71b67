"""Aggregator joins (docs/design.md, "Joins"): exactly once and crash-safe.

1. STORE, one script per partition for the partials that arrived together: XACK
   each partial and, only if that acknowledged it and the join is not done, HSET
   lane -> raw JSON in the join's hash and start its deadline (ZADD NX, server time +
   ``join.timeout``). When the hash then holds every lane, the script returns it. A
   partial for a done join is acknowledged and counted in the ``late`` counter instead.
2. The worker runs the merge handler on what came back (user code stays out of
   scripts: it may be slow, async, or fail).
3. EMIT, one script per partition for the merges that finished together: only if
   the join is not done AND still holds exactly the parts the merge saw, set ``done``
   (with a TTL), delete the hash and the deadline, and XADD the result. Otherwise it
   answers ``done`` (another replica emitted first: drop ours) or ``changed`` (a part
   arrived: merge again).
4. Nothing is lost if a worker dies between 1 and 3: the join keeps its deadline,
   and at that deadline any replica's sweeper merges what is stored (``missing``
   naming absent lanes) and runs the same EMIT. A merge that raises is retried after
   ``visibility_timeout`` and dead-lettered (the stored parts) past ``max_deliveries``.

Two replicas racing on the last two partials: STORE is atomic, so only the second
one sees a full hash; even if both merged, EMIT's ``done`` check lets one result out.
A join key value containing braces would break the partition hash tag, so such keys
are replaced by their SHA-1. The ``done`` marker lives ``settings["join_done_ttl"]``
seconds (default one day): a partial arriving later than that starts a new join.

Partials and merges flow through the worker's window like any call: a partial is
held until its STORE is written, a merge until its EMIT is (``lane.Lane``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import orjson
from meshc.runtime import keys, scripts, taskhead
from meshc.runtime.commit import Flusher
from meshc.runtime.context import Call, Context, Joined
from meshc.runtime.errors import ConfigError
from meshc.runtime.lane import Lane
from meshc.runtime.wire import (
    AGENT,
    DATA,
    ERROR,
    JOIN,
    SOURCE_ID,
    SOURCE_STREAM,
    TRACE,
    Delivery,
    short_error,
    text,
    took_ms,
)
from pydantic import BaseModel

DUE_LIMIT = 100
MERGE_ROUNDS = 3


@dataclass(slots=True)
class JoinState:
    """A join's hash as read from the server: lane fields plus ``.trace``/``.parent``/``.fails``."""

    partition: int
    jid: bytes
    fields: dict[bytes, bytes]
    rounds: int = 0


def join_id(values: list[object]) -> str:
    """The join's identity in key names: compact JSON of the key values, brace-free."""
    raw = orjson.dumps(values).decode()
    if "{" in raw or "}" in raw:
        return "h:" + hashlib.sha1(raw.encode()).hexdigest()
    return raw


@dataclass
class _Batch:
    """Script calls by partition, and what each call's reply is about."""

    calls: dict[int, scripts.ScriptCall] = field(default_factory=dict)
    about: dict[int, list[JoinState]] = field(default_factory=dict)
    settled: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.calls)

    def __len__(self) -> int:
        return sum(len(states) for states in self.about.values()) or len(self.settled)


class JoinEngine:
    """The aggregator side of a worker: store partials, merge, emit once, sweep timeouts."""

    def __init__(self, lane: Lane) -> None:
        spec = lane.spec
        if spec.join is None:
            raise ConfigError(f"aggregator {spec.name!r} has no join")
        unknown = [s for s in spec.reads if s not in spec.join.lanes]
        if unknown:
            raise ConfigError(f"aggregator {spec.name!r}: no lane for streams {unknown}")
        self.lane = lane
        self.on = spec.join.on
        self.lane_of = {s: spec.join.lanes[s] for s in spec.reads}
        self.lane_models = {self.lane_of[s]: lane.in_models[s] for s in spec.reads}
        self.timeout_ms = int(spec.join.timeout * 1000)
        self.ttl = int(spec.settings.get("join_done_ttl", 86_400))
        self.interval = max(
            0.05, min(1.0, spec.join.timeout / 4, spec.policy.visibility_timeout / 2)
        )
        self.sweep_at = 0.0
        self.deadlines = {p: self._private("join-deadlines", p) for p in lane.partitions}
        mesh, parts = lane.mesh, lane.mesh.partitions
        self.late = {
            p: keys.late_counter(mesh.name, spec.name, p, parts).encode() for p in lane.partitions
        }
        self.stores: Flusher[_Batch] = Flusher(_Batch, self._send_store, lane.fail)
        self.emits: Flusher[_Batch] = Flusher(_Batch, self._send_emit, lane.fail)

    def _private(self, what: str, partition: int) -> bytes:
        m = self.lane.mesh
        return keys.private_key(m.name, self.lane.spec.name, what, partition, m.partitions).encode()

    def _state_keys(self, jid: str | bytes, partition: int) -> tuple[bytes, bytes]:
        name = jid.decode() if isinstance(jid, bytes) else jid
        return self._private("join:" + name, partition), self._private("done:" + name, partition)

    async def wait(self) -> None:
        """Until every STORE and EMIT queued so far is written."""
        while self.stores.busy or self.emits.busy:
            await self.stores.wait()
            await self.emits.wait()

    # -- partials -------------------------------------------------------------------

    def accept(self, deliveries: list[Delivery]) -> None:
        """Queue the STORE of each valid partial (the rest are dead-lettered)."""
        batch: _Batch | None = None
        for d in deliveries:
            payload = self.lane.admit(d)
            if payload is None:
                continue
            batch = batch or self.stores.open()
            tel = self.lane.telemetry
            self._store(d, payload, batch, b"" if tel is None else tel.stored(d))
            self.lane.finish(1)  # stored by the next STORE: nothing left to run

    def _store(self, d: Delivery, payload: BaseModel, batch: _Batch, traceparent: bytes) -> None:
        p = d.partition
        call = batch.calls.get(p)
        if call is None:
            head = (self.lane.spec.name, len(self.lane_models), self.timeout_ms)
            call = batch.calls[p] = scripts.ScriptCall(head, (self.deadlines[p], self.late[p]))
        values = payload.model_dump(mode="json", include=set(self.on))
        # One join per task: its root entry (``task.root``, stamped at the fan-out; a
        # caller cannot choose it), else its trace. Two tasks sent with one trace and
        # one key stay two joins; a task sent again (a new root) is joined afresh.
        root = d.fields.get(taskhead.ROOT)
        who = "r:" + text(root) if root else text(d.trace)
        jid = join_id([who, *(values.get(f) for f in self.on)])
        expected = d.fields.get(taskhead.LANES, b"")
        hash_key, done_key = self._state_keys(jid, p)
        call.args += (
            call.key(d.key),
            d.entry_id,
            call.key(hash_key),
            call.key(done_key),
            jid,
            self.lane_of[d.stream],
            d.fields[DATA],
            d.trace,
            expected.count(b",") + 1 if expected else len(self.lane_models),
            expected,
            traceparent,
        )
        batch.settled.append((d.key, d.entry_id))

    async def _send_store(self, batch: _Batch) -> None:
        lane = self.lane
        parts = list(batch.calls)
        replies = await lane.retrying(
            scripts.join_store, [(c.keys, c.args) for c in batch.calls.values()]
        )
        complete: list[JoinState] = []
        for p, call, (late, stale, done) in zip(parts, batch.calls.values(), replies, strict=True):
            lane.stats.late += int(late)
            lane.stats.duplicates += int(stale)
            lane.stats.committed += (len(call.args) - 3) // 11 - int(late) - int(stale)
            if lane.telemetry is not None:
                lane.telemetry.late(int(late))
            for i in range(0, len(done), 2):
                complete.append(JoinState(p, done[i], _pairs(done[i + 1])))
        lane.settled(batch.settled)
        self.merge(complete)

    # -- merges ---------------------------------------------------------------------

    def merge(self, states: list[JoinState]) -> None:
        """Start the merge handler on each join (it holds a place in the window)."""
        calls = []
        for s in states:
            try:
                calls.append(Call(self._joined(s), self._context(s), self._merged, s))
            except Exception as exc:  # stored state that no longer fits its model
                self.lane.hold(1)
                self.lane.finish(1)
                self.lane.spawn(self._fail(s, exc))
        if calls:
            self.lane.hold(len(calls))
            self.lane.start(calls)

    def _joined(self, s: JoinState) -> Joined:
        parts = {
            lane: model.model_validate_json(s.fields[lane.encode()])
            for lane, model in self.lane_models.items()
            if lane.encode() in s.fields
        }
        first = next(iter(parts.values()))
        key = first.model_dump(mode="json", include=set(self.on))
        expected = s.fields.get(b".lanes")  # the lanes the task was sent to, when known
        lanes = expected.decode().split(",") if expected else list(self.lane_models)
        missing = tuple(lane for lane in lanes if lane not in parts)
        return Joined({k: key[k] for k in self.on if k in key}, parts, missing)

    def _context(self, s: JoinState) -> Context:
        f = s.fields
        return Context(
            self.lane.spec,
            self.lane.out_models,
            self.lane.log,
            trace=f[b".trace"].decode("utf-8", "replace"),
            entry_id=f[b".parent"].decode(),
            attempt=int(f.get(b".fails", b"0")) + 1,
            stream="",
            partition=s.partition,
        )

    def _merged(self, call: Call) -> None:
        s: JoinState = call.tag
        self.lane.finish(1)
        outputs: list[tuple[str, bytes]] = []
        if call.error is None:
            try:
                outputs = call.ctx.collect(call.result)
            except Exception as exc:
                call.error = exc
        if call.error is not None:
            if self.lane.telemetry is not None:
                self.lane.telemetry.merged(call, s.fields)
            self.lane.spawn(self._fail(s, call.error))
            return
        tel = self.lane.telemetry
        traceparent = b"" if tel is None else tel.merged(call, s.fields)
        batch = self.emits.open()
        p = s.partition
        c = batch.calls.get(p)
        if c is None:
            head: tuple[scripts.Arg, ...] = (self.lane.spec.name, self.ttl)
            head += (len(self.lane.header) // 2, *self.lane.header)
            c = batch.calls[p] = scripts.ScriptCall(head, (self.deadlines[p],))
            batch.about[p] = []
        hash_key, done_key = self._state_keys(s.jid, p)
        f = s.fields
        c.args += (
            c.key(hash_key),
            c.key(done_key),
            s.jid,
            len(call.payload.parts),
            f[b".trace"],
            f[b".parent"],
            call.ctx.attempt,
            took_ms(call.took),
            traceparent,
            len(outputs),
        )
        for stream, data in outputs:
            c.args += (c.key(self.lane.key(stream, p)), data)
        batch.about[p].append(s)

    async def _send_emit(self, batch: _Batch) -> None:
        lane = self.lane
        replies = await lane.retrying(
            scripts.join_emit, [(c.keys, c.args) for c in batch.calls.values()]
        )
        changed: list[JoinState] = []
        done = 0
        for p, statuses in zip(batch.calls, replies, strict=True):
            for s, status in zip(batch.about[p], statuses, strict=True):
                lane.stats.joins_emitted += status == b"emitted"
                if status == b"emitted" and lane.telemetry is not None:
                    lane.telemetry.emitted(s.fields, _lanes_in(s.fields))
                if status == b"changed" and s.rounds + 1 < MERGE_ROUNDS:
                    changed.append(s)
                else:
                    done += 1
        lane.release(done + len(changed))
        if changed:
            self.merge(await self._reload(changed))

    async def _reload(self, states: list[JoinState]) -> list[JoinState]:
        fresh = await self._load([(s.partition, s.jid) for s in states])
        rounds = {(s.partition, s.jid): s.rounds + 1 for s in states}
        for s in fresh:
            s.rounds = rounds.get((s.partition, s.jid), 0)
        return fresh

    # -- timeouts -------------------------------------------------------------------

    async def sweep(self) -> None:
        """Merge and emit every join whose deadline passed (any replica may do it)."""
        self.sweep_at = time.monotonic() + self.interval
        parts = self.lane.partitions
        calls = [((self.deadlines[p],), (DUE_LIMIT,)) for p in parts]
        replies = await scripts.join_due.many(self.lane.redis, calls)
        due = [(p, jid) for p, jids in zip(parts, replies, strict=True) for jid in jids]
        if any(len(r) >= DUE_LIMIT for r in replies):
            self.sweep_at = time.monotonic()
        if due:
            self.merge(await self._load(due))

    async def _load(self, due: list[tuple[int, bytes]]) -> list[JoinState]:
        redis = self.lane.redis
        pipe = redis.pipeline(transaction=False)
        for p, jid in due:
            pipe.hgetall(self._state_keys(jid, p)[0])
        states = []
        for (p, jid), fields in zip(due, await pipe.execute(), strict=True):
            if fields:
                states.append(JoinState(p, jid, fields))
            else:  # emitted or cleared elsewhere: only the deadline is left over
                await redis.zrem(self.deadlines[p], jid)
        return states

    async def _fail(self, s: JoinState, error: BaseException) -> None:
        """Retry the join after ``visibility_timeout``, or dead-letter its parts."""
        lane, p, f = self.lane, s.partition, s.fields
        try:
            lane.stats.failed += 1
            lane.log.warning(
                "merge failed for join %s: %s", s.jid.decode(), short_error(error), exc_info=error
            )
            hash_key, done_key = self._state_keys(s.jid, p)
            parts = {k.decode(): orjson.Fragment(v) for k, v in f.items() if not k.startswith(b".")}
            policy = lane.policy
            head = (s.jid, policy.max_deliveries, int(policy.visibility_timeout * 1000), self.ttl)
            fields = (
                DATA,
                orjson.dumps(parts),
                ERROR,
                short_error(error).encode(),
                SOURCE_STREAM,
                b"",
                SOURCE_ID,
                f.get(b".parent", b""),
                TRACE,
                f.get(b".trace", b""),
                AGENT,
                lane.spec.name.encode(),
                JOIN,
                s.jid,
            )
            keys_ = (self.deadlines[p], hash_key, done_key, lane.dlq_keys[p])
            if await lane.retrying(scripts.join_fail, [(keys_, (*head, *fields))]) == [2]:
                lane.stats.dead_lettered += 1
                if lane.telemetry is not None:
                    lane.telemetry.dead_letter("")
                lane.log.error(
                    "join %s dead-lettered after repeated merge failures", s.jid.decode()
                )
        finally:
            lane.release(1)


def _lanes_in(fields: dict[bytes, bytes]) -> int:
    """How many lanes a join's hash holds (its other fields start with a dot)."""
    return sum(1 for k in fields if not k.startswith(b"."))


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))
