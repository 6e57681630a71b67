"""Running handler calls: up to ``concurrency`` at once, each handed back the moment
it finishes (docs/design.md, "Commit").

A worker keeps a window of calls in flight and refills it as calls finish, so one
slow call never holds up the others. Three runners, chosen by the handler:

- :class:`AsyncRunner` for ``async def`` handlers: ``concurrency`` lane tasks on the
  worker's event loop take calls from one queue; a call is cancelled at its deadline.
  Thousands can be in flight in one process, and a handler that returns without
  waiting runs back to back with the next, with no task or loop turn of its own.
- :class:`ThreadRunner` for plain handlers: ``concurrency`` lane threads take calls
  from one queue, one call at a time, and hand finished calls back to the loop in
  bursts (one wake-up for everything that finished since the last), so a fast handler
  costs no thread hop per message. A call that outlives its deadline is *abandoned*:
  Python cannot stop a thread, so the call is finished as a ``HandlerTimeout``, a
  fresh thread takes its lane, and the stuck thread ends when its call returns, its
  result discarded. The runner counts stuck threads; the worker exits (and its
  supervisor starts a fresh process) when they reach a bound.
- :class:`InlineRunner` for built-ins that are pure and take microseconds
  (``fanout``): run on the loop, since a thread hop would cost more than the call.

Runners never raise for a handler's own error: it is stored on the call, a
``SystemExit`` or ``KeyboardInterrupt`` too, which the worker treats as fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from meshc.runtime.builtins import INLINE
from meshc.runtime.context import Call
from meshc.runtime.errors import HandlerTimeout

Done = Callable[[Call], None]


def is_async(handler: Callable[..., Any]) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )


class Runner(Protocol):
    """Starts calls; reports each finished call to ``done`` on the event loop."""

    stuck: int  # calls past their deadline whose code is still running

    def start(self, calls: Iterable[Call]) -> None: ...

    def expire(self, now: float) -> None:
        """Finish every call past its deadline as a ``HandlerTimeout``."""

    async def aclose(self) -> None: ...


def make_runner(
    handler: Callable[..., Any], concurrency: int, timeout: float | None, done: Done, name: str
) -> Runner:
    if any(handler is f for f in INLINE):  # identity: handlers may not hash
        return InlineRunner(handler, done)
    if is_async(handler):
        return AsyncRunner(handler, concurrency, timeout, done)
    return ThreadRunner(handler, concurrency, timeout, done, name)


def timed_out(timeout: float | None) -> HandlerTimeout:
    return HandlerTimeout(f"handler ran longer than its timeout of {timeout:g} s")


class InlineRunner:
    """Runs each call at once, on the loop (pure built-ins of a few microseconds)."""

    stuck = 0

    def __init__(self, handler: Callable[..., Any], done: Done) -> None:
        self.handler = handler
        self.done = done

    def start(self, calls: Iterable[Call]) -> None:
        handler, done = self.handler, self.done
        for call in calls:
            call.started = time.monotonic()
            try:
                call.result = handler(call.payload, call.ctx)
            except BaseException as exc:  # SystemExit too: the worker decides (fatal)
                call.error = exc
            call.took = time.monotonic() - call.started
            done(call)

    def expire(self, now: float) -> None:
        return None

    async def aclose(self) -> None:
        return None


class _Lane:
    """One lane thread's state; ``call`` is what it runs now (guarded by the runner's lock)."""

    __slots__ = ("call", "abandoned")

    def __init__(self) -> None:
        self.call: Call | None = None
        self.abandoned = False


class AsyncRunner:
    """``concurrency`` lane tasks over one queue, each awaiting one call at a time; a
    call past its deadline is cancelled and finished as a timeout. A lane that finds
    more queued when its call returns takes the next at once, in the same turn of the
    loop: a handler that never waits costs no task and no loop turn per message. A
    handler that ignores the cancellation keeps its lane task (counted in ``stuck``,
    its result discarded) and a fresh lane task takes over."""

    def __init__(
        self, handler: Callable[..., Any], concurrency: int, timeout: float | None, done: Done
    ) -> None:
        self.handler = handler
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.done = done
        self.stuck = 0
        self._queue: deque[Call] = deque()
        self._lanes: dict[_Lane, asyncio.Task[None]] = {}
        self._idle: deque[asyncio.Future[None]] = deque()
        self._closing = False

    def start(self, calls: Iterable[Call]) -> None:
        if not self._lanes and not self._closing:  # lanes start with the first calls
            for _ in range(self.concurrency):
                self._spawn()
        self._queue.extend(calls)
        idle, n = self._idle, len(self._queue)
        while idle and n:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def _spawn(self) -> None:
        lane = _Lane()
        self._lanes[lane] = asyncio.get_running_loop().create_task(self._serve(lane))

    async def _serve(self, lane: _Lane) -> None:
        handler, queue, idle = self.handler, self._queue, self._idle
        loop = asyncio.get_running_loop()
        while True:
            while not queue:
                if self._closing:
                    return
                waiter = loop.create_future()
                idle.append(waiter)
                await waiter
            call = queue.popleft()
            lane.call = call
            call.started = time.monotonic()
            try:
                call.result = await handler(call.payload, call.ctx)
            except asyncio.CancelledError:
                if not call.expired or self._closing:
                    raise  # the worker is closing
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()  # the lane goes on with the next call
                call.error = timed_out(self.timeout)
            except BaseException as exc:  # SystemExit too: the worker decides (fatal)
                call.error = exc
            lane.call = None
            if lane.abandoned:  # finished as a timeout meanwhile; a new lane took over
                self.stuck -= 1
                return
            call.took = time.monotonic() - call.started
            self.done(call)

    def expire(self, now: float) -> None:
        if self.timeout is None:
            return
        limit = now - self.timeout
        for lane, task in list(self._lanes.items()):
            call = lane.call
            if call is None or call.started > limit:
                continue
            if not call.expired:  # first: ask it to stop
                call.expired = True
                task.cancel()
            elif call.started <= limit - 1.0:  # a second later it has not: abandon it
                lane.abandoned = True
                del self._lanes[lane]
                self.stuck += 1
                call.error = timed_out(self.timeout)
                call.took = now - call.started
                self._spawn()
                self.done(call)

    async def aclose(self) -> None:
        self._closing = True
        self._queue.clear()
        tasks = list(self._lanes.values())
        self._lanes.clear()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


class ThreadRunner:
    """``concurrency`` lane threads over one queue; see the module docstring."""

    def __init__(
        self,
        handler: Callable[..., Any],
        concurrency: int,
        timeout: float | None,
        done: Done,
        name: str,
    ) -> None:
        self.handler = handler
        self.timeout = timeout
        self.done = done
        self.name = name
        self.stuck = 0
        self.concurrency = max(1, concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cv = threading.Condition()
        self._queue: deque[Call] = deque()
        self._finished: list[Call] = []
        self._lanes: list[_Lane] = []
        self._closing = False
        self._spawned = 0

    def _spawn(self) -> None:
        lane = _Lane()
        self._lanes.append(lane)
        self._spawned += 1
        thread = threading.Thread(
            target=self._serve, args=(lane,), name=f"meshc-{self.name}-{self._spawned}", daemon=True
        )
        thread.start()

    def start(self, calls: Iterable[Call]) -> None:
        if self._loop is None:  # the lane threads start with the first calls
            self._loop = asyncio.get_running_loop()
            with self._cv:
                for _ in range(self.concurrency):
                    self._spawn()
        with self._cv:
            before = len(self._queue)
            self._queue.extend(calls)
            added = len(self._queue) - before
            if added == 1:
                self._cv.notify()
            elif added:
                self._cv.notify(added)

    def _serve(self, lane: _Lane) -> None:
        handler, cv, queue = self.handler, self._cv, self._queue
        while True:
            with cv:
                while not queue and not self._closing:
                    cv.wait()
                if not queue:
                    return
                call = queue.popleft()
                lane.call = call
                call.started = time.monotonic()
            try:
                call.result = handler(call.payload, call.ctx)
            except BaseException as exc:  # SystemExit too: the worker decides (fatal)
                call.error = exc
            with cv:
                lane.call = None
                if lane.abandoned:  # finished as a timeout meanwhile; a new lane took over
                    self.stuck -= 1
                    return
                call.took = time.monotonic() - call.started
                self._finished.append(call)
                wake = len(self._finished) == 1
            if wake and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                    self._loop.call_soon_threadsafe(self._hand_back)

    def _hand_back(self) -> None:
        with self._cv:
            finished, self._finished = self._finished, []
        for call in finished:
            self.done(call)

    def expire(self, now: float) -> None:
        if self.timeout is None:
            return
        limit = now - self.timeout
        late: list[Call] = []
        with self._cv:
            for lane in self._lanes:
                call = lane.call
                if call is not None and not lane.abandoned and call.started <= limit:
                    lane.abandoned = True
                    self.stuck += 1
                    late.append(call)
            if late:
                self._lanes = [lane for lane in self._lanes if not lane.abandoned]
                for _ in late:
                    self._spawn()
        for call in late:
            call.expired = True
            call.error = timed_out(self.timeout)
            call.took = now - call.started
            self.done(call)

    async def aclose(self) -> None:
        with self._cv:
            self._closing = True
            self._queue.clear()
            self._cv.notify_all()
