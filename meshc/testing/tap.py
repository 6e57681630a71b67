"""Wrapping handlers of a running mesh: count calls per input, stall a replica.

The stall is how a message gets delivered twice on purpose: the first call of a
chosen agent acts as if its worker had stalled (a live worker keeps its entries, so
a slow call alone would not do): its entry is handed away as a stalled worker's
would be taken, another replica takes it over and handles it, and then the stalled
call finishes too. Both replicas try to commit; the commit script must let one set of
outputs through.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from meshc.runtime.context import Context

Handler = Callable[..., Any]


class Tap:
    """Wraps handlers: counts calls per (agent, input entry) and can stall the first
    call of chosen agents for ``stall`` seconds after ``lose(ctx)`` gave its entry
    away, so that another replica takes it over and both finish (a duplicate delivery
    on purpose). The running mesh sets ``lose``."""

    def __init__(self, stall: float = 0.0, stall_agents: Iterable[str] = ()) -> None:
        self.stall = stall
        self.to_stall = set(stall_agents)
        self.lose: Callable[[Context], None] | None = None
        self.calls: dict[str, Counter[str]] = {}
        self.active = 0
        self._lock = threading.Lock()

    def wrap(self, agent: str, handler: Handler) -> Handler:
        calls = self.calls.setdefault(agent, Counter())
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            type(handler).__call__
        ):

            async def wrapped_async(payload: Any, ctx: Context) -> Any:
                pause = self._enter(agent, calls, ctx)
                try:
                    if pause:
                        self._lose(ctx)
                        await asyncio.sleep(pause)
                    return await handler(payload, ctx)
                finally:
                    self._leave()

            return wrapped_async

        def wrapped(payload: Any, ctx: Context) -> Any:
            pause = self._enter(agent, calls, ctx)
            try:
                if pause:
                    self._lose(ctx)
                    time.sleep(pause)
                return handler(payload, ctx)
            finally:
                self._leave()

        return wrapped

    def _enter(self, agent: str, calls: Counter[str], ctx: Context) -> float:
        with self._lock:
            self.active += 1
            calls[ctx.entry_id] += 1
            if agent not in self.to_stall:
                return 0.0
            self.to_stall.discard(agent)
            return self.stall

    def _lose(self, ctx: Context) -> None:
        if self.lose is not None:
            self.lose(ctx)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def redelivered(self, agent: str) -> int:
        """Input entries of ``agent`` whose handler ran more than once."""
        return sum(1 for n in self.calls.get(agent, Counter()).values() if n > 1)
