"""Taking work back: failed calls whose retry is due, and idle entries of dead workers.

Failed calls wait with the retry consumer; once they have waited the visibility timeout
they come back many at a time (a handler that raised did not kill its worker). Idle
entries of another consumer mean its worker died or hung: nobody knows which of them
killed it, so each is taken over alone, right before it runs, and settled before the
next (``reader``). Another consumer's entry is taken only when two scans in a row
found it idle with the same owner: a live owner refreshes its entries within a third
of the visibility timeout, so one sighting may only mean the server restarted and its
clock ran on through the outage (every entry then looks idle at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from meshc.runtime import scripts
from meshc.runtime.reader import Reader
from meshc.runtime.spec import Policy
from meshc.runtime.transport import TRANSIENT
from meshc.runtime.window import Window
from meshc.runtime.wire import Delivery
from redis.asyncio import Redis

Idle = tuple[bytes, bytes, int]  # key, id, deliveries so far


class Retries:
    """One worker's retry scans; ``scan`` runs every ``visibility_timeout / 2``."""

    def __init__(
        self,
        reader: Reader,
        policy: Policy,
        consumer: str,
        window: Window,
        dispatch: Callable[[list[Delivery]], None],
        settle_all: Callable[[list[Delivery]], Awaitable[None]],
        log: logging.Logger,
    ) -> None:
        self.reader = reader
        self.policy = policy
        self.consumer = consumer
        self.window = window
        self.dispatch = dispatch
        self.settle_all = settle_all
        self.log = log
        self._seen: set[tuple[bytes, bytes, str]] = set()  # idle at the last scan
        self._suspects: asyncio.Task[None] | None = None

    async def scan(self, redis: Redis, stopping: Callable[[], bool]) -> bool:
        """One scan; True when more idle entries wait than one scan takes."""
        idle_ms = int(self.policy.visibility_timeout * 1000)
        rows = await self.reader.pending(redis, None, idle_ms, self.policy.batch)
        retries: dict[bytes, list[tuple[bytes, int]]] = {}
        idle: list[Idle] = []
        seen, self._seen = self._seen, set()
        for key, eid, owner, n in rows:
            if owner == scripts.RETRY_CONSUMER:
                retries.setdefault(key, []).append((eid, n))
            elif owner != self.consumer:  # this consumer's own: what recovery runs
                self._seen.add((key, eid, owner))
                if (key, eid, owner) in seen:
                    idle.append((key, eid, n))
        for key, group in retries.items():
            if stopping():
                return False
            room = max(0, self.window.free)
            self.dispatch(await self.reader.claim(redis, key, group[:room], idle_ms, count=True))
        if idle and (self._suspects is None or self._suspects.done()):
            self._suspects = asyncio.create_task(self._take_idle(redis, idle, idle_ms, stopping))
        return len(rows) >= self.policy.batch

    async def _take_idle(
        self, redis: Redis, idle: list[Idle], idle_ms: int, stopping: Callable[[], bool]
    ) -> None:
        """Run idle entries of other consumers one at a time, each settled before the
        next is taken over, so one that kills this worker takes no other with it."""
        try:
            for key, eid, n in idle:
                if stopping():
                    return
                got = await self.reader.claim(redis, key, [(eid, n)], idle_ms, count=True)
                await self.settle_all(got)
        except TRANSIENT as exc:
            self.log.warning("server unavailable while retrying idle entries (%s)", exc)

    def cancel(self) -> None:
        if self._suspects is not None:
            self._suspects.cancel()
