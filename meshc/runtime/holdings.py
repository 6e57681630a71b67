"""The entries a worker holds: read, not yet written, and kept fresh while it works.

A live worker resets the idle time of its entries every third of the visibility
timeout (KEEPALIVE: XCLAIM ... JUSTID, which counts no delivery), so no other replica
takes work it is doing, however long a call runs; after a server outage it refreshes
all of them at once, since the server's clock ran on. Whoever needs to know when a
given entry is written (recovery rounds, idle entries run one at a time) waits on it
here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from meshc.runtime import scripts
from meshc.runtime.wire import Delivery
from redis.asyncio import Redis

Pair = tuple[bytes, bytes]  # (key, entry id)


class Holdings:
    """(key, id) -> when read (or last refreshed), oldest first; waiters per entry."""

    def __init__(
        self, agent: str, consumer: str, inputs: dict[bytes, tuple[str, int]], log: logging.Logger
    ) -> None:
        self.agent = agent
        self.consumer = consumer
        self.inputs = inputs
        self.log = log
        self.held: dict[Pair, float] = {}
        self._waiters: dict[Pair, asyncio.Future[None]] = {}

    def __contains__(self, pair: Pair) -> bool:
        return pair in self.held

    def add(self, deliveries: Iterable[Delivery], now: float) -> None:
        held = self.held
        for d in deliveries:
            held[(d.key, d.entry_id)] = now

    def settle(self, pairs: list[Pair]) -> None:
        """These entries are written: no longer held; wake whoever waits for them."""
        held, waiters = self.held, self._waiters
        for pair in pairs:
            held.pop(pair, None)
            if waiters:
                waiter = waiters.pop(pair, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def waiting(self, deliveries: Iterable[Delivery]) -> list[asyncio.Future[None]]:
        """A future per delivery, done once it is written (settled)."""
        loop = asyncio.get_running_loop()
        futures = []
        for d in deliveries:
            future = self._waiters[(d.key, d.entry_id)] = loop.create_future()
            futures.append(future)
        return futures

    async def keepalive(self, redis: Redis, older_than: float, now: float) -> None:
        """Refresh every entry held since before ``older_than``."""
        by_part: dict[int, scripts.ScriptCall] = {}
        refreshed = []
        for pair, since in self.held.items():
            if since > older_than:
                break  # insertion order: the rest is younger
            key, eid = pair
            p = self.inputs[key][1]
            call = by_part.get(p)
            if call is None:
                call = by_part[p] = scripts.ScriptCall((self.agent, self.consumer))
            call.args += (call.key(key), 1, eid)
            refreshed.append(pair)
        if not by_part:
            return
        lost = await scripts.keepalive.many(redis, [(c.keys, c.args) for c in by_part.values()])
        gone = sum(len(x) for x in lost)
        if gone:
            self.log.warning(
                "%d entries in work here were taken over by another replica (this worker "
                "was stalled); whichever commits first wins",
                gone,
            )
        for pair in refreshed:
            if self.held.pop(pair, None) is not None:
                self.held[pair] = now  # to the young end
