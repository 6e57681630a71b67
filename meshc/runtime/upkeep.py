"""What runs beside a worker's reader, on a timer of its own, so no handler can block
it: deadlines, the liveness heartbeat, keepalives of held entries, retry scans and
join sweeps. Deadlines and keepalives go on until the worker closes; retries and
sweeps only while it reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from meshc.runtime.calls import Runner
from meshc.runtime.holdings import Holdings
from meshc.runtime.join import JoinEngine
from meshc.runtime.process.health import Heartbeat
from meshc.runtime.retries import Retries
from meshc.runtime.spec import Policy
from meshc.runtime.transport import Backoff, waitable
from redis.asyncio import Redis

TICK = 0.05  # seconds between rounds


class Upkeep:
    """The timer loop of one worker; ``outage`` is set by whoever saw the server go."""

    def __init__(
        self,
        *,
        policy: Policy,
        runner: Runner,
        holdings: Holdings,
        retries: Retries,
        joiner: JoinEngine | None,
        heartbeat: Heartbeat,
        redis: Callable[[], Redis],
        stopping: Callable[[], bool],
        check: Callable[[], None],
        log: logging.Logger,
    ) -> None:
        self.policy = policy
        self.runner = runner
        self.holdings = holdings
        self.retries = retries
        self.joiner = joiner
        self.heartbeat = heartbeat
        self.redis = redis
        self.stopping = stopping
        self.check = check  # e.g. how many calls are stuck
        self.log = log
        self.due = {"retry": 0.0, "keepalive": 0.0}
        self.outage = False
        self.closed = False

    def hold_retries(self, held: bool) -> None:
        """No retry scans while ``held`` (recovery runs this worker's own entries first)."""
        self.due["retry"] = float("inf") if held else 0.0

    async def run(self) -> None:
        backoff = Backoff(self.log)
        while not self.closed:
            self.heartbeat.beat()
            now = time.monotonic()
            self.runner.expire(now)
            self.check()
            try:
                await self._round(now)
                backoff.reset()
            except Exception as exc:
                if not waitable(exc):  # away, restarting, busy with a script, no scripts
                    raise
                self.outage = True
                await backoff.pause("server unavailable", exc)
            await asyncio.sleep(TICK)

    async def _round(self, now: float) -> None:
        if self.outage:
            await self._after_outage(now)
        if now >= self.due["keepalive"]:
            await self._keepalive(now)
        if not self.stopping() and now >= self.due["retry"]:
            more = await self.retries.scan(self.redis(), self.stopping)
            self.due["retry"] = now if more else now + self._half
        if not self.stopping() and self.joiner is not None and now >= self.joiner.sweep_at:
            await self.joiner.sweep()

    @property
    def _half(self) -> float:
        return max(0.05, self.policy.visibility_timeout / 2)

    async def _keepalive(self, now: float, every: bool = False) -> None:
        """Refresh the entries held longer than a third of the visibility timeout
        (``every``: all of them)."""
        third = self.policy.visibility_timeout / 3
        self.due["keepalive"] = now + max(0.05, third)
        await self.holdings.keepalive(self.redis(), now if every else now - third, now)

    async def _after_outage(self, now: float) -> None:
        """The server is back. Its clock kept running, so every entry held here now
        looks idle for the whole outage: refresh them all at once, and look for other
        replicas' idle entries only a little later, after they have refreshed theirs,
        or live workers would take each other's work."""
        await self._keepalive(now, every=True)
        self.due["retry"] = max(self.due["retry"], now + self._half)
        self.outage = False
