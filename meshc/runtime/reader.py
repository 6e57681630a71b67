"""Where a worker's deliveries come from: fresh reads and reclaimed idle entries.

Fresh entries come from one XREADGROUP over every input key (stream x served
partition), so a worker with many lanes still pays one round trip per batch. Entries
that another consumer (or this one) left pending longer than ``visibility_timeout``
are taken over with XAUTOCLAIM, which is how a failed or abandoned message is retried;
their delivery counts come from the pending list, since XAUTOCLAIM does not return them.
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

    async def reclaim(self, r: Redis) -> list[Delivery]:
        """XAUTOCLAIM entries idle past ``visibility_timeout`` on every input key.

        Runs every ``visibility_timeout / 2``, or again at once while a key's scan is
        unfinished. Entries trimmed away while pending are dropped by the server; they
        are logged here because their work is lost.
        """
        pipe = r.pipeline(transaction=False)
        idle_ms = int(self.policy.visibility_timeout * 1000)
        for key in self.inputs:
            start = self._cursors.get(key, b"0-0")
            pipe.xautoclaim(key, self.group, self.consumer, idle_ms, start, self.policy.batch)
        claimed: list[Delivery] = []
        more = False
        for key, (cursor, entries, deleted) in zip(self.inputs, await pipe.execute(), strict=True):
            self._cursors[key] = cursor
            more = more or cursor != b"0-0"
            if deleted:
                shown = [text(d) for d in deleted[:10]]
                self.log.warning(
                    "%d pending entries of %s were trimmed away before they were handled: %s",
                    len(deleted),
                    text(key),
                    shown,
                )
            stream, p = self.inputs[key]
            claimed += [Delivery(key, stream, p, eid, fields or {}) for eid, fields in entries]
        interval = max(0.05, self.policy.visibility_timeout / 2)
        self.reclaim_at = time.monotonic() + (0.0 if more else interval)
        if claimed:
            await self._delivery_counts(r, claimed)
            self.log.info("reclaimed %d idle entries", len(claimed))
        return claimed

    async def _delivery_counts(self, r: Redis, claimed: list[Delivery]) -> None:
        pipe = r.pipeline(transaction=False)
        for d in claimed:
            pipe.xpending_range(d.key, self.group, d.entry_id, d.entry_id, 1)
        for d, rows in zip(claimed, await pipe.execute(), strict=True):
            d.attempt = int(rows[0]["times_delivered"]) if rows else 1
