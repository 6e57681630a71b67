"""Long-polls: one reader of the terminal streams wakes every waiting request.

A thousand ``GET /tasks/{trace}?wait=30`` must not hold a thousand server
connections, so each waiting request is a future keyed by its trace, and one plain
XREAD loop per key group (the way ``MeshClient.wait`` reads, no consumer group, so it
takes nothing from anyone) resolves the futures of the traces it sees.

A result can land after the reader passed its key but before its task's record holds
it (the recording reader is a different one): the hub keeps the last results it saw,
and a waiter looks there as well as in the record, so no result slips between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import redis
import redis.asyncio
from meshc.gateway import streams
from meshc.gateway.records import ResultItem
from meshc.ops.client import decode_entry
from meshc.runtime.spec import MeshSpec

RECENT = 10_000
RETRY_S = 1.0
log = logging.getLogger("meshc.gateway")


class ResultHub:
    """Futures per trace, resolved by the readers that :meth:`run` starts."""

    def __init__(self, r: redis.asyncio.Redis, mesh: MeshSpec, recent: int = RECENT) -> None:
        self.redis = r
        self.groups = streams.key_groups(mesh, mesh.terminal_streams(), streams.is_cluster(r))
        self._waiters: dict[str, list[asyncio.Future[ResultItem]]] = {}
        self._recent: OrderedDict[str, ResultItem] = OrderedDict()
        self._size = recent
        self.ready = asyncio.Event()

    @property
    def waiting(self) -> int:
        return sum(len(f) for f in self._waiters.values())

    async def run(self) -> None:
        """Read every key group until cancelled; a lost server is retried each second."""
        cursors = [await streams.last_ids(self.redis, g) for g in self.groups]
        self.ready.set()
        pairs = zip(self.groups, cursors, strict=True)
        await asyncio.gather(*(self._follow(g, c) for g, c in pairs))

    def watch(self, trace: str) -> asyncio.Future[ResultItem]:
        """A future for the next result of ``trace``; :meth:`forget` it when done."""
        future: asyncio.Future[ResultItem] = asyncio.get_running_loop().create_future()
        seen = self._recent.get(trace)
        if seen is not None:
            future.set_result(seen)
        else:
            self._waiters.setdefault(trace, []).append(future)
        return future

    def recent(self, trace: str) -> ResultItem | None:
        """The result of ``trace`` if this reader saw it lately (maybe not yet recorded)."""
        return self._recent.get(trace)

    def forget(self, trace: str, future: asyncio.Future[ResultItem]) -> None:
        waiting = self._waiters.get(trace, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self._waiters.pop(trace, None)

    async def _follow(self, group: dict[str, str], cursors: dict[str, str]) -> None:
        while True:
            try:
                reply = await self.redis.xread(
                    cursors,  # type: ignore[arg-type]
                    count=streams.COUNT,
                    block=streams.BLOCK_MS,
                )
            except (redis.ConnectionError, redis.TimeoutError) as err:
                log.warning("result reader: %s; retrying in %g s", err, RETRY_S)
                await asyncio.sleep(RETRY_S)
                continue
            for key, entries in streams.pairs(reply):
                for eid, fields in entries:
                    cursors[key] = eid.decode()
                    entry = decode_entry(eid, fields)
                    self._seen(entry["trace"], ResultItem(group[key], entry["id"], entry["data"]))

    def _seen(self, trace: str, item: ResultItem) -> None:
        if trace not in self._recent:
            self._recent[trace] = item
            if len(self._recent) > self._size:
                self._recent.popitem(last=False)
        for future in self._waiters.pop(trace, []):
            if not future.done():
                future.set_result(item)
