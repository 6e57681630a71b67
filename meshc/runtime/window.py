"""How much work a worker holds: a window of ``concurrency`` calls plus a read-ahead.

The worker reads only when the window has room, so it never holds more than
``concurrency`` calls in flight plus a few entries queued behind them. The read-ahead
keeps fast handlers fed (they finish a whole read before the next one returns) but
must not let an entry wait longer than it can afford: an entry read is held by this
worker, and one that waits long behind slow calls ages for nothing. So the read-ahead
is sized from the calls' own running time: what ``concurrency`` lanes start within
``min(1 s, visibility_timeout / 4)``, at most one ``batch``, at least none.

A finished call no longer counts against the window (its lane is free at once), but
its commit is still to be written: those are bounded apart, by ``max(batch,
concurrency)``, so a slow server holds reads back instead of piling up results.
"""

from __future__ import annotations

import asyncio
import contextlib


class Window:
    """Counts what is held: read and not yet finished (``held``: queued or running,
    entries and merges alike), and finished but not yet written (``unsettled``)."""

    def __init__(self, concurrency: int, batch: int, visibility_timeout: float) -> None:
        self.concurrency = max(1, concurrency)
        self.batch = max(1, batch)
        self.target = min(1.0, visibility_timeout / 4)
        self.ahead = min(self.batch, self.concurrency)  # until calls have been timed
        self.backlog = 2 * max(self.batch, self.concurrency)  # one batch written, one filling
        self.low_water = max(1, self.ahead // 2)  # read again once this much is free
        self.held = 0
        self.unsettled = 0
        self.mean: float | None = None
        self._room: asyncio.Event | None = None

    @property
    def limit(self) -> int:
        return self.concurrency + self.ahead

    @property
    def free(self) -> int:
        return min(self.limit - self.held, self.backlog - self.unsettled)

    @property
    def busy(self) -> int:
        """Everything not yet written: what a worker must finish before it stops."""
        return self.held + self.unsettled

    def take(self, n: int) -> None:
        """``n`` entries read (or merges started)."""
        self.held += n

    def finish(self, n: int) -> None:
        """``n`` of them finished (or were refused): their commit is yet to be written."""
        self.held -= n
        self.unsettled += n
        self._wake()

    def release(self, n: int) -> None:
        """``n`` commits written (or entries dropped)."""
        self.unsettled -= n
        self._wake()

    def _wake(self) -> None:
        room = self._room
        if room is not None and not room.is_set() and self.free >= self.low_water:
            room.set()

    def observe(self, took: float) -> None:
        """A call's running time, for the read-ahead (an exponential moving average)."""
        mean = took if self.mean is None else 0.8 * self.mean + 0.2 * took
        self.mean = mean
        fits = int(self.concurrency * self.target / mean) if mean > 0 else self.batch
        self.ahead = max(0, min(self.batch, fits))
        self.low_water = max(1, self.ahead // 2)  # refill in bursts, not one entry a read

    async def room(self, timeout: float) -> int:
        """Wait (at most ``timeout`` s) until at least ``low_water`` is free; the room."""
        if self._room is None:
            self._room = asyncio.Event()
        if self.free < self.low_water:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), timeout)
        return self.free
