"""Where a worker's deliveries come from: fresh reads and reclaimed idle entries.

Fresh entries come from one XREADGROUP over every input key (stream x served
partition), so a worker with many lanes still pays one round trip per batch. Entries
that another consumer (or this one) left pending longer than ``visibility_timeout``
are retried: XPENDING ... IDLE finds them without touching them, and each is taken
over (XAUTOCLAIM COUNT 1) only right before it runs, alone. Taking over counts a
delivery, and a message that kills its worker (out of memory, a crash in a C
extension) must count deliveries alone: taking over a whole batch at once counted one
for every entry of it each time, so the good messages read with such a poison ran out
of ``max_deliveries`` with it and were dead-lettered without ever finishing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from meshc.runtime.spec import Policy
from meshc.runtime.wire import Delivery, text
from redis.asyncio import Redis


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
        self.reclaim_at = 0.0  # monotonic time of the next reclaim pass; 0: at start
        self.count = policy.batch  # entries per read; the worker lowers it for slow handlers
        self._streams: dict[Any, Any] = dict.fromkeys(inputs, b">")
        self._cursors: dict[bytes, bytes] = {}

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

    async def reclaim(self, r: Redis) -> list[tuple[bytes, bytes]]:
        """Entries idle past ``visibility_timeout``, as (key, id), oldest first per key.

        Nothing is claimed here (see :meth:`take`). Runs every ``visibility_timeout /
        2``, or again at once while a key has more idle entries than one batch.
        """
        pipe = r.pipeline(transaction=False)
        idle_ms = int(self.policy.visibility_timeout * 1000)
        for key in self.inputs:
            start = self._cursors.get(key, b"-")
            pipe.xpending_range(key, self.group, start, b"+", self.policy.batch, idle=idle_ms)
        found: list[tuple[bytes, bytes]] = []
        more = False
        for key, rows in zip(self.inputs, await pipe.execute(), strict=True):
            full = len(rows) >= self.policy.batch
            self._cursors[key] = b"(" + rows[-1]["message_id"] if full else b"-"
            more = more or full
            found += [(key, row["message_id"]) for row in rows]
        interval = max(0.05, self.policy.visibility_timeout / 2)
        self.reclaim_at = time.monotonic() + (0.0 if more else interval)
        return found

    async def take(self, r: Redis, key: bytes, entry_id: bytes) -> Delivery | None:
        """Claim one idle entry, counting a delivery for it alone: XAUTOCLAIM COUNT 1
        from ``entry_id`` (that entry, or the next idle one if another replica took or
        finished it meanwhile); None when none is left. Pending entries trimmed away
        are dropped by the server as it scans them; logged, since their work is lost.
        """
        idle_ms = int(self.policy.visibility_timeout * 1000)
        pipe = r.pipeline(transaction=False)
        pipe.xautoclaim(key, self.group, self.consumer, idle_ms, entry_id, 1)
        pipe.xpending_range(key, self.group, entry_id, entry_id, 1)
        (_, claimed, deleted), rows = await pipe.execute()
        if deleted:
            self.log.warning(
                "%d pending entries of %s were trimmed away before they were handled: %s",
                len(deleted),
                text(key),
                [text(d) for d in deleted[:10]],
            )
        if not claimed:
            return None
        eid, fields = claimed[0]
        if eid != entry_id:
            rows = await r.xpending_range(key, self.group, eid, eid, 1)
        stream, p = self.inputs[key]
        attempt = int(rows[0]["times_delivered"]) if rows else 1
        return Delivery(key, stream, p, eid, fields or {}, attempt)
