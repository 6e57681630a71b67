"""Running handler calls under an agent's ``concurrency`` and ``timeout``.

A batch is split into at most ``concurrency`` lanes that run side by side. Plain
handlers run in a thread pool so they never stall the event loop; without a timeout
each lane is ONE thread hop for its whole share of the batch (a hop per message
would cost more than a trivial handler). With a timeout each call gets its own hop
so it can be abandoned: Python cannot stop a thread, so a plain handler that times
out keeps its thread until it returns, and its result is discarded. Async handlers
run on the loop and are cancelled at their timeout. The built-in ``fanout`` (pure,
microseconds) runs on the loop too: a thread hop costs a few hundred microseconds of
CPU and latency per batch on a busy 2-core machine, far more than the call.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from meshc.runtime.builtins import INLINE
from meshc.runtime.context import Call
from meshc.runtime.errors import HandlerTimeout
from meshc.runtime.spec import Policy


def is_async(handler: Callable[..., Any]) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )


class Executor:
    """Runs handler calls and stores each outcome on its ``Call``."""

    def __init__(self, handler: Callable[..., Any], policy: Policy, name: str) -> None:
        self.handler = handler
        self.is_async = is_async(handler)
        self.inline = any(handler is f for f in INLINE)  # identity: handlers may not hash
        self.concurrency = max(1, policy.concurrency)
        self.timeout = policy.timeout
        self._pool: ThreadPoolExecutor | None = None
        if not (self.is_async or self.inline):
            # Spare threads so a few abandoned (timed-out) calls do not starve the lanes.
            spare = self.concurrency if self.timeout is not None else 0
            self._pool = ThreadPoolExecutor(
                self.concurrency + spare, thread_name_prefix=f"meshc-{name}"
            )

    async def run(self, calls: Sequence[Call]) -> None:
        """Run every call; never raises for a handler's own error."""
        if not calls:
            return
        lanes = min(self.concurrency, len(calls))
        if self.inline:
            self._run_chunk(calls)
        elif self.is_async:
            await _in_lanes(calls, lanes, self._run_async)
        elif self.timeout is None:
            loop = asyncio.get_running_loop()
            chunks = [calls[i::lanes] for i in range(lanes)]
            await asyncio.gather(
                *(loop.run_in_executor(self._pool, self._run_chunk, c) for c in chunks)
            )
        else:
            await _in_lanes(calls, lanes, self._run_thread_timed)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run_chunk(self, calls: Sequence[Call]) -> None:
        handler = self.handler
        for call in calls:
            try:
                call.result = handler(call.payload, call.ctx)
            except Exception as exc:
                call.error = exc

    async def _run_async(self, call: Call) -> None:
        if self.timeout is None:  # the common case, without a timer per message
            try:
                call.result = await self.handler(call.payload, call.ctx)
            except Exception as exc:
                call.error = exc
            return
        try:
            async with asyncio.timeout(self.timeout) as scope:
                call.result = await self.handler(call.payload, call.ctx)
        except TimeoutError as exc:
            call.error = self._timed_out() if scope.expired() else exc
        except Exception as exc:
            call.error = exc

    async def _run_thread_timed(self, call: Call) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self.handler, call.payload, call.ctx)
        try:
            call.result = await asyncio.wait_for(future, self.timeout)
        except TimeoutError as exc:
            call.error = self._timed_out() if future.cancelled() else exc
        except Exception as exc:
            call.error = exc

    def _timed_out(self) -> HandlerTimeout:
        return HandlerTimeout(f"handler ran longer than its timeout of {self.timeout} s")


async def _in_lanes(
    calls: Sequence[Call], lanes: int, one: Callable[[Call], Awaitable[None]]
) -> None:
    """Run ``one`` over the calls with at most ``lanes`` in flight (a shared iterator)."""
    shared: Iterator[Call] = iter(calls)

    async def lane() -> None:
        for call in shared:
            await one(call)

    if lanes == 1:
        await lane()
    else:
        await asyncio.gather(*(lane() for _ in range(lanes)))
