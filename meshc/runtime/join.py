"""Aggregator joins (DESIGN.md section 5, "Joins"): exactly once and crash-safe.

1. STORE, one script per batch and partition: XACK each partial and, only if that
   acknowledged it and the join is not done, HSET lane -> raw JSON in the join's hash
   and start its deadline (ZADD NX, server time + ``join.timeout``). When the hash
   then holds every lane, the script returns it. A partial for a done join is
   acknowledged and counted in the ``late`` counter instead.
2. The worker runs the merge handler on what came back (user code stays out of
   scripts: it may be slow, async, or fail).
3. EMIT, one script per batch and partition: only if the join is not done AND still
   holds exactly the parts the merge saw, set ``done`` (with a TTL), delete the hash
   and the deadline, and XADD the result. Otherwise it answers ``done`` (another
   replica emitted first: drop ours) or ``changed`` (a part arrived: merge again).
4. Nothing is lost if a worker dies between 1 and 3: the join keeps its deadline,
   and at that deadline any replica's sweeper merges what is stored (``missing``
   naming absent lanes) and runs the same EMIT. A merge that raises is retried after
   ``visibility_timeout`` and dead-lettered (the stored parts) past ``max_deliveries``.

Two replicas racing on the last two partials: STORE is atomic, so only the second
one sees a full hash; even if both merged, EMIT's ``done`` check lets one result out.
A join key value containing braces would break the partition hash tag, so such keys
are replaced by their SHA-1. The ``done`` marker lives ``settings["join_done_ttl"]``
seconds (default one day): a partial arriving later than that starts a new join.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from meshc.runtime import keys, scripts
from meshc.runtime.context import Call, Context, Joined
from meshc.runtime.errors import ConfigError
from meshc.runtime.wire import AGENT, DATA, TRACE, Delivery, short_error, text
from pydantic import BaseModel

if TYPE_CHECKING:
    from meshc.runtime.worker import Worker

DUE_LIMIT = 100
MERGE_ROUNDS = 3


@dataclass(slots=True)
class JoinState:
    """A join's hash as read from the server: lane fields plus ``.trace``/``.parent``/``.fails``."""

    partition: int
    jid: bytes
    fields: dict[bytes, bytes]


def join_id(values: list[Any]) -> str:
    """The join's identity in key names: compact JSON of the key values, brace-free."""
    raw = orjson.dumps(values).decode()
    if "{" in raw or "}" in raw:
        return "h:" + hashlib.sha1(raw.encode()).hexdigest()
    return raw


class JoinEngine:
    """The aggregator side of a worker: store partials, merge, emit once, sweep timeouts."""

    def __init__(self, worker: Worker) -> None:
        spec = worker.spec
        if spec.join is None:
            raise ConfigError(f"aggregator {spec.name!r} has no join")
        unknown = [s for s in spec.reads if s not in spec.join.lanes]
        if unknown:
            raise ConfigError(f"aggregator {spec.name!r}: no lane for streams {unknown}")
        self.w = worker
        self.on = spec.join.on
        self.lane_of = {s: spec.join.lanes[s] for s in spec.reads}
        self.lane_models = {self.lane_of[s]: worker.in_models[s] for s in spec.reads}
        self.timeout_ms = int(spec.join.timeout * 1000)
        self.ttl = int(spec.settings.get("join_done_ttl", 86_400))
        self.interval = max(
            0.05, min(1.0, spec.join.timeout / 4, spec.policy.visibility_timeout / 2)
        )
        self.sweep_at = 0.0
        self.deadlines = {p: self._private("join-deadlines", p) for p in worker.partitions}
        mesh, parts = worker.mesh, worker.mesh.partitions
        self.late = {
            p: keys.late_counter(mesh.name, spec.name, p, parts).encode() for p in worker.partitions
        }

    def _private(self, what: str, partition: int) -> bytes:
        m = self.w.mesh
        return keys.private_key(m.name, self.w.spec.name, what, partition, m.partitions).encode()

    def _state_keys(self, jid: str | bytes, partition: int) -> tuple[bytes, bytes]:
        name = jid.decode() if isinstance(jid, bytes) else jid
        return self._private("join:" + name, partition), self._private("done:" + name, partition)

    async def handle(self, deliveries: list[Delivery]) -> None:
        """Store a batch of partials; merge and emit the joins it completed."""
        batch = self.w.new_batch()
        stores: dict[int, scripts.ScriptCall] = {}
        for d in deliveries:
            payload = self.w.admit(d, batch)
            if payload is not None:
                self._store(d, payload, stores)
        await self.w.commit(batch)
        if not stores:
            return
        calls = [(c.keys, c.args) for c in stores.values()]
        replies = await self.w.retrying(scripts.join_store, calls)
        states: dict[tuple[int, bytes], JoinState] = {}
        for (p, call), (late, stale, complete) in zip(stores.items(), replies, strict=True):
            self.w.stats.late += int(late)
            self.w.stats.duplicates += int(stale)
            self.w.stats.committed += (len(call.args) - 3) // 8 - int(late) - int(stale)
            for i in range(0, len(complete), 2):
                states[(p, complete[i])] = JoinState(p, complete[i], _pairs(complete[i + 1]))
        await self._merge(list(states.values()))

    def _store(
        self, d: Delivery, payload: BaseModel, stores: dict[int, scripts.ScriptCall]
    ) -> None:
        p = d.partition
        call = stores.get(p)
        if call is None:
            head = (self.w.spec.name, len(self.lane_models), self.timeout_ms)
            call = stores[p] = scripts.ScriptCall(head, (self.deadlines[p], self.late[p]))
        values = payload.model_dump(mode="json", include=set(self.on))
        # One join per task: the partials of a task share its trace, so a task submitted
        # again later (same key values, new trace) is joined afresh, not counted as late.
        jid = join_id([text(d.trace), *(values.get(f) for f in self.on)])
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
        )

    async def sweep(self) -> None:
        """Merge and emit every join whose deadline passed (any replica may do it)."""
        self.sweep_at = time.monotonic() + self.interval
        parts = self.w.partitions
        calls = [((self.deadlines[p],), (DUE_LIMIT,)) for p in parts]
        replies = await scripts.join_due.many(self.w.redis, calls)
        due = [(p, jid) for p, jids in zip(parts, replies, strict=True) for jid in jids]
        if any(len(r) >= DUE_LIMIT for r in replies):
            self.sweep_at = time.monotonic()
        if due:
            await self._merge(await self._load(due))

    async def _load(self, due: list[tuple[int, bytes]]) -> list[JoinState]:
        pipe = self.w.redis.pipeline(transaction=False)
        for p, jid in due:
            pipe.hgetall(self._state_keys(jid, p)[0])
        states = []
        for (p, jid), fields in zip(due, await pipe.execute(), strict=True):
            if fields:
                states.append(JoinState(p, jid, fields))
            else:  # emitted or cleared elsewhere: only the deadline is left over
                await self.w.redis.zrem(self.deadlines[p], jid)
        return states

    async def _merge(self, states: list[JoinState]) -> None:
        """Run the merge handler and EMIT; re-merge joins that changed meanwhile."""
        for _ in range(MERGE_ROUNDS):
            if not states:
                return
            calls = []
            for s in states:
                try:
                    calls.append((s, self._call(s)))
                except Exception as exc:  # stored state that no longer fits its model
                    await self._fail(s, exc)
            await self.w.executor.run([call for _, call in calls])
            emits: dict[int, tuple[scripts.ScriptCall, list[JoinState]]] = {}
            for s, call in calls:
                await self._settle(s, call, emits)
            if not emits:
                return
            pairs = [(c.keys, c.args) for c, _ in emits.values()]
            replies = await self.w.retrying(scripts.join_emit, pairs)
            changed = []
            for (_, sent), statuses in zip(emits.values(), replies, strict=True):
                for s, status in zip(sent, statuses, strict=True):
                    self.w.stats.joins_emitted += status == b"emitted"
                    if status == b"changed":
                        changed.append((s.partition, s.jid))
            states = await self._load(changed) if changed else []

    def _call(self, s: JoinState) -> Call:
        parts = {
            lane: model.model_validate_json(s.fields[lane.encode()])
            for lane, model in self.lane_models.items()
            if lane.encode() in s.fields
        }
        first = next(iter(parts.values()))
        key = first.model_dump(mode="json", include=set(self.on))
        missing = tuple(lane for lane in self.lane_models if lane not in parts)
        f = s.fields
        ctx = Context(
            self.w.spec,
            self.w.out_models,
            self.w.log,
            trace=f[b".trace"].decode(),
            entry_id=f[b".parent"].decode(),
            attempt=int(f.get(b".fails", b"0")) + 1,
            stream="",
            partition=s.partition,
        )
        return Call(Joined({k: key[k] for k in self.on if k in key}, parts, missing), ctx)

    async def _settle(
        self,
        s: JoinState,
        call: Call,
        emits: dict[int, tuple[scripts.ScriptCall, list[JoinState]]],
    ) -> None:
        outputs: list[tuple[str, bytes]] = []
        if call.error is None:
            try:
                outputs = call.ctx.collect(call.result)
            except Exception as exc:
                call.error = exc
        if call.error is not None:
            await self._fail(s, call.error)
            return
        p = s.partition
        if p not in emits:
            emits[p] = (scripts.ScriptCall((self.w.spec.name, self.ttl), (self.deadlines[p],)), [])
        c, sent = emits[p]
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
            len(outputs),
        )
        for stream, data in outputs:
            c.args += (c.key(self.w.key(stream, p)), data)
        sent.append(s)

    async def _fail(self, s: JoinState, error: BaseException) -> None:
        """Retry the join after ``visibility_timeout``, or dead-letter its parts."""
        w, p, f = self.w, s.partition, s.fields
        w.stats.failed += 1
        w.log.warning(
            "merge failed for join %s: %s", s.jid.decode(), short_error(error), exc_info=error
        )
        hash_key, done_key = self._state_keys(s.jid, p)
        parts = {k.decode(): orjson.Fragment(v) for k, v in f.items() if not k.startswith(b".")}
        head = (s.jid, w.policy.max_deliveries, int(w.policy.visibility_timeout * 1000), self.ttl)
        fields = (
            DATA,
            orjson.dumps(parts),
            b"error",
            short_error(error).encode(),
            b"source_stream",
            b"",
            b"source_id",
            f.get(b".parent", b""),
            TRACE,
            f.get(b".trace", b""),
            AGENT,
            w.spec.name.encode(),
            b"join",
            s.jid,
        )
        keys_ = (self.deadlines[p], hash_key, done_key, w.dlq_keys[p])
        if await w.retrying(scripts.join_fail, [(keys_, (*head, *fields))]) == [2]:
            w.stats.dead_lettered += 1
            w.log.error("join %s dead-lettered after repeated merge failures", s.jid.decode())


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))
