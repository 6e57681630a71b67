"""Where a worker's deliveries come from: fresh reads, retries, and idle entries.

Fresh entries come from one XREADGROUP over every input key (stream x served
partition), so a worker with many lanes still pays one round trip per read.

Entries that were not finished come back in two ways (docs/design.md, "Failures"):

- **Retries.** A call that failed is handed to the group's retry consumer
  (:data:`RETRY_CONSUMER`) by the commit script, without counting a delivery. Once it
  has waited ``visibility_timeout`` any replica takes such entries back, many at a
  time: a handler that raised is known not to have killed its worker.
- **Idle entries** of another consumer: their worker died or hung (a live worker
  keeps its entries fresh, ``keepalive``). Nobody knows which of them killed it, so
  each is taken over (XCLAIM, counting a delivery for it alone) only right before it
  runs, alone: taking over a batch at once counted one for every entry of it each
  time, and the good messages read with a poison ran out of ``max_deliveries`` with it.
"""

from __future__ import annotations

import logging
from typing import Any

from meshc.runtime.spec import Policy
from meshc.runtime.wire import Delivery, id_order, text
from redis.asyncio import Redis

PENDING_PAGE = 1000


class Reader:
    """Reads one agent's input keys as one consumer of the agent's group."""

    def __init__(
        self,
        group: str,
        consumer: str,
        inputs: dict[bytes, tuple[str, int]],
        policy: Policy,
        log: logging.Logger,
    ) -> None:
        self.group = group
        self.consumer = consumer
        self.inputs = inputs
        self.policy = policy
        self.log = log
        self.count = policy.batch  # entries per read; the worker sets it to its free room
        self._streams: dict[Any, Any] = dict.fromkeys(inputs, b">")

    async def create_groups(self, r: Redis) -> None:
        """One group per (input key, agent), from ``0`` so nothing written before is
        skipped; BUSYGROUP (it exists) is success, any other refusal is raised."""
        pipe = r.pipeline(transaction=False)
        for key in self.inputs:
            pipe.xgroup_create(key, self.group, id="0", mkstream=True)
        for reply in await pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise reply

    async def read(self, r: Redis, block_ms: int) -> list[Delivery]:
        """Up to ``count`` new entries per key, waiting at most ``block_ms``."""
        reply: Any = await r.xreadgroup(
            self.group, self.consumer, self._streams, count=self.count, block=block_ms
        )
        out: list[Delivery] = []
        for key, entries in reply or ():
            stream, p = self.inputs[key]
            out += [Delivery(key, stream, p, eid, fields or {}) for eid, fields in entries]
        return out

    async def drain(self) -> list[Delivery]:
        """Deliveries read but not yet handed over, at shutdown (none here: every read
        returns what it got; the cluster reader keeps reads in flight)."""
        return []

    async def pending(
        self, r: Redis, consumer: str | None, idle_ms: int, limit: int
    ) -> list[tuple[bytes, bytes, str, int]]:
        """Pending entries idle at least ``idle_ms`` (of ``consumer``, or of anyone), as
        (key, id, owner, deliveries), oldest first per key; at most ``limit`` per key."""
        pipe = r.pipeline(transaction=False)
        for key in self.inputs:
            pipe.xpending_range(
                key, self.group, b"-", b"+", limit, consumername=consumer, idle=idle_ms or None
            )
        found: list[tuple[bytes, bytes, str, int]] = []
        for key, rows in zip(self.inputs, await pipe.execute(), strict=True):
            found += [
                (key, row["message_id"], text(row["consumer"]), int(row["times_delivered"]))
                for row in rows
            ]
        return found

    async def claim(
        self, r: Redis, key: bytes, rows: list[tuple[bytes, int]], min_idle_ms: int, *, count: bool
    ) -> list[Delivery]:
        """Take over the entries ``rows`` (id, deliveries so far) of ``key`` if still idle
        ``min_idle_ms``, counting a delivery for each when ``count`` (else their counts
        stay as they are). What is not returned was taken by another consumer
        meanwhile, or trimmed away while pending (the server drops those from the
        pending list: their work is lost)."""
        by_count: dict[int, list[Any]] = {}
        for eid, n in rows:
            by_count.setdefault(n, []).append(eid)
        pipe = r.pipeline(transaction=False)
        for n, ids in by_count.items():
            extra: dict[str, Any] = {} if count else {"retrycount": n}
            pipe.xclaim(key, self.group, self.consumer, min_idle_ms, ids, **extra)
        stream, p = self.inputs[key]
        out: list[Delivery] = []
        for n, claimed in zip(by_count, await pipe.execute(), strict=True):
            attempt = n + 1 if count else n
            out += [
                Delivery(key, stream, p, eid, fields or {}, attempt)
                for eid, fields in claimed
                if eid is not None
            ]
        if len(out) < len(rows):
            self.log.debug(
                "%d of %d entries of %s were taken elsewhere or trimmed away",
                len(rows) - len(out),
                len(rows),
                text(key),
            )
        out.sort(key=lambda d: id_order(d.entry_id))
        return out
