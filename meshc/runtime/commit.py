"""Group commit: what finished is written by the next script call, not one call each.

Every finished call adds a record to the open batch of its script; a flusher sends
the batch as soon as no other batch of that script is in flight, and opens a new one
for whatever finishes meanwhile. Under light load each call is committed alone, at
once; under heavy load the records that finished while one commit travelled share
the next, so a fast handler pays one round trip per burst rather than per message.
Order is kept: batches go out one after another, and records keep their order in
a batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar, cast

from meshc.runtime.scripts import Arg, ScriptCall
from meshc.runtime.wire import Delivery

GATHER = 0.001  # seconds a commit waits at most for calls finishing beside it


class Batch(Protocol):
    def __bool__(self) -> bool: ...

    def __len__(self) -> int: ...


B = TypeVar("B", bound=Batch)


class Flusher(Generic[B]):
    """Keeps one open batch of type ``B`` and sends it with ``send`` when it can.

    ``open()`` returns the batch to add records to and makes sure a flush follows.
    ``send`` must finish the batch for good (retrying what is retryable): a batch is
    never sent twice. An error it raises stops the flusher, goes to ``on_error`` (the
    worker treats it as fatal) and is raised again by :meth:`open` and :meth:`wait`.
    """

    def __init__(
        self,
        new: Callable[[], B],
        send: Callable[[B], Awaitable[None]],
        on_error: Callable[[BaseException], None],
        cap: int = 1 << 30,
    ) -> None:
        self.cap = cap  # records that make a batch go without gathering more
        self._new = new
        self._send = send
        self._on_error = on_error
        self._open = new()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def open(self) -> B:
        if self._error is not None:
            raise self._error
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._open

    async def _run(self) -> None:
        try:
            while True:
                await self._gather()
                if not self._open:
                    break
                batch, self._open = self._open, self._new()
                await self._send(batch)
        except BaseException as exc:
            self._error = exc
            self._on_error(exc)
        finally:
            self._task = None

    async def _gather(self) -> None:
        """Let calls that are finishing right now join the open batch: yield to the loop
        while each turn adds records, for at most ``GATHER`` seconds. Under light load
        the first turn adds nothing and the batch goes at once; a burst of fast calls
        shares one commit instead of paying a round trip for every two or three."""
        size, deadline = len(self._open), time.monotonic() + GATHER
        while True:
            await asyncio.sleep(0)
            grown = len(self._open)
            if grown == size or grown >= self.cap or time.monotonic() >= deadline:
                return
            size = grown

    @property
    def busy(self) -> bool:
        return self._task is not None or bool(self._open)

    async def wait(self) -> None:
        """Until everything added so far is sent; raises what stopped the flusher."""
        while True:
            if self._error is not None:
                raise self._error
            if self._task is None:
                if not self._open:
                    return
                self.open()
            assert self._task is not None
            await asyncio.shield(self._task)


class CommitBatch:
    """Builds the COMMIT calls of one batch: one call per partition it touched.

    ``head`` is the script's fixed arguments (group, agent and the header fields
    every output carries). Consecutive inputs with one output each, from the same key
    to the same key and on the same attempt, share one 'r' record (4 arguments a
    message, not 9): the server spends less CPU on a pass-through message. A run only
    ever grows at the end of its call, so inputs keep their order. ``settled`` lists
    the inputs (key, id) the batch settles, so the worker can release their place in
    its window once the batch is written.
    """

    def __init__(self, head: Sequence[Arg]) -> None:
        self._head = head
        self._calls: dict[int, ScriptCall] = {}
        # partition -> (in key, out key, attempt, where its count is, where it ends)
        self._runs: dict[int, tuple[int, int, int, int, int]] = {}
        self.settled: list[tuple[bytes, bytes]] = []

    def __bool__(self) -> bool:
        return bool(self._calls)

    def __len__(self) -> int:
        return len(self.settled)

    def _call(self, partition: int) -> ScriptCall:
        call = self._calls.get(partition)
        if call is None:
            call = self._calls[partition] = ScriptCall(self._head)
        return call

    def outputs(
        self,
        d: Delivery,
        outputs: Sequence[tuple[bytes, bytes]],
        took: bytes,
        own: Sequence[bytes] = (),
    ) -> None:
        """Ack ``d`` and, if the ack counted, add ``(key, data)`` outputs with the
        standard header plus ``own``, header fields of this input's own (name value
        ...; an 'h' record, only when there are some)."""
        self.settled.append((d.key, d.entry_id))
        c = self._call(d.partition)
        if own:
            c.args += (b"h", c.key(d.key), d.entry_id, d.trace, d.attempt, took, len(own) // 2)
            c.args += (*own, len(outputs))
        elif len(outputs) == 1:
            self._run(c, d, *outputs[0], took)
            return
        else:
            c.args += (b"o", c.key(d.key), d.entry_id, d.trace, d.attempt, took, len(outputs))
        for key, data in outputs:
            c.args += (c.key(key), data)

    def _run(self, c: ScriptCall, d: Delivery, key: bytes, data: bytes, took: bytes) -> None:
        src, dst, args = c.key(d.key), c.key(key), c.args
        run = self._runs.get(d.partition)
        if run is not None and run[:3] == (src, dst, d.attempt) and run[4] == len(args):
            count_at = run[3]
            args[count_at] = cast(int, args[count_at]) + 1
        else:
            args += (b"r", src, dst, d.attempt, 1)
            count_at = len(args) - 1
        args += (d.entry_id, d.trace, data, took)
        self._runs[d.partition] = (src, dst, d.attempt, count_at, len(args))

    def entries(self, d: Delivery, entries: Sequence[tuple[bytes, Sequence[bytes]]]) -> None:
        """Ack ``d`` and, if the ack counted, add free-form ``(key, fields)`` entries."""
        self.settled.append((d.key, d.entry_id))
        c = self._call(d.partition)
        c.args += (b"f", c.key(d.key), d.entry_id, len(entries))
        for key, fields in entries:
            c.args += (c.key(key), len(fields), *fields)

    def park(self, d: Delivery, consumer: str) -> None:
        """Hand ``d`` (a failed call) to the retry consumer if ``consumer`` still holds it."""
        self.settled.append((d.key, d.entry_id))
        c = self._call(d.partition)
        c.args += (b"p", c.key(d.key), d.entry_id, consumer)

    def calls(self) -> list[tuple[Sequence[Arg], Sequence[Arg]]]:
        return [(c.keys, c.args) for c in self._calls.values()]
