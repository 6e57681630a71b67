"""After a crash: find the message that kills the worker, without punishing the others.

A worker that dies (killed, out of memory, a crash in a C extension, ``os._exit`` in a
handler) leaves pending every entry it held: the calls in flight, the entries read
ahead, results not yet committed. Its supervisor starts a successor under the same
consumer name and tells it the predecessor died (``launch``); the successor then runs
that pending list again *before* reading anything new, in rounds:

1. Each round is a group of suspects, written to a marker key before it starts and
   deleted when all of it is settled. The first round is the oldest ``concurrency``
   entries (what was most likely running).
2. If the worker dies during a round, its successor finds the marker: the killer is
   in that group. A group of several is halved and its halves run one after another;
   a group of one has killed its worker while running alone, which is counted. At
   :data:`KILL_LIMIT` such deaths the entry is dead-lettered with that reason.
3. Suspects count a delivery when they are taken over (they were delivered again),
   but do not count against ``max_deliveries`` while recovered: an innocent message
   read with a poison one is never dead-lettered for having been in flight when its
   worker died.

The lane pauses only for this: rounds run with full concurrency, a poison message is
isolated in about log2(concurrency) + 2 crashes, and crashes after a worker was ready
are restarted at once (``supervisor``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from meshc.runtime import keys
from meshc.runtime.reader import Reader
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import Delivery, id_order, text
from redis.asyncio import Redis

KILL_LIMIT = 2  # deaths while running alone before an entry is dead-lettered
PAGE = 10_000

Entry = tuple[bytes, bytes, int]  # key, id, deliveries


class Recovery:
    """One worker's recovery of what its predecessor held; see the module docstring."""

    def __init__(
        self,
        mesh: MeshSpec,
        agent: str,
        consumer: str,
        reader: Reader,
        partitions: Sequence[int],
        concurrency: int,
        log: logging.Logger,
    ) -> None:
        self.reader = reader
        self.consumer = consumer
        self.concurrency = max(1, concurrency)
        self.log = log
        m, parts = mesh, mesh.partitions
        self.markers = {
            p: keys.private_key(m.name, agent, f"recovering:{consumer}", p, parts).encode()
            for p in partitions
        }
        self.deaths = {
            p: keys.private_key(m.name, agent, "deaths", p, parts).encode() for p in partitions
        }

    async def run(
        self,
        r: Redis,
        handle: Callable[[list[Delivery]], Awaitable[None]],
    ) -> int:
        """Run every entry this consumer holds, in rounds; ``handle`` runs one round
        (or dead-letters a killer: its ``verdict`` is set) and returns once all of it
        is settled. Returns the number of entries recovered."""
        held = await self._held(r)
        if not held:
            await self._clear(r)
            return 0
        died = await self._marked(r, held)
        self.log.warning(
            "recovering %d entries this worker's predecessor held when it died%s",
            len(held),
            f" ({len(died)} were running in the round that it died in)" if died else "",
        )
        rounds: list[list[Entry]] = []
        if len(died) == 1:
            killer = died[0]
            deaths = await self._count_death(r, killer)
            if deaths >= KILL_LIMIT:
                await self._dead(r, killer, deaths, handle)
                held.remove(killer)
                died = []
        if len(died) > 1:
            half = len(died) // 2
            rounds += [died[:half], died[half:]]
        elif died:
            rounds.append(died)
        rest = [e for e in held if e not in set(died)]
        rounds += [rest[i : i + self.concurrency] for i in range(0, len(rest), self.concurrency)]
        for group in rounds:
            await self._round(r, group, handle)
        await self._clear(r)
        return len(held)

    async def _held(self, r: Redis) -> list[Entry]:
        rows = await self.reader.pending(r, self.consumer, 0, PAGE)
        return sorted(((k, i, n) for k, i, _, n in rows), key=lambda e: (id_order(e[1]), e[0]))

    async def _marked(self, r: Redis, held: list[Entry]) -> list[Entry]:
        pipe = r.pipeline(transaction=False)
        for marker in self.markers.values():
            pipe.hkeys(marker)
        marked = {m for reply in await pipe.execute() for m in reply}
        return [e for e in held if _member(e) in marked]

    async def _round(
        self, r: Redis, group: list[Entry], handle: Callable[[list[Delivery]], Awaitable[None]]
    ) -> None:
        by_part: dict[int, list[Entry]] = {}
        for e in group:
            by_part.setdefault(self.reader.inputs[e[0]][1], []).append(e)
        pipe = r.pipeline(transaction=False)
        for p, entries in by_part.items():
            pipe.delete(self.markers[p])
            pipe.hset(self.markers[p], mapping={_member(e): 1 for e in entries})
        await pipe.execute()
        deliveries: list[Delivery] = []
        for key in {e[0] for e in group}:
            rows = [(i, n) for k, i, n in group if k == key]
            deliveries += await self.reader.claim(r, key, rows, 0, count=True)
        for d in deliveries:
            d.recovered = True
        await handle(deliveries)

    async def _count_death(self, r: Redis, e: Entry) -> int:
        p = self.reader.inputs[e[0]][1]
        deaths = int(await r.hincrby(self.deaths[p], _member(e), 1))
        self.log.error(
            "entry %s of %s was running alone when this worker's predecessor died (%d time%s)",
            text(e[1]),
            text(e[0]),
            deaths,
            "" if deaths == 1 else "s",
        )
        return deaths

    async def _dead(
        self, r: Redis, e: Entry, deaths: int, handle: Callable[[list[Delivery]], Awaitable[None]]
    ) -> None:
        claimed = await self.reader.claim(r, e[0], [(e[1], e[2])], 0, count=True)
        for d in claimed:
            d.verdict = (
                f"its worker process died {deaths} times while handling it alone "
                "(killed, out of memory, or a crash in native code)"
            )
        await handle(claimed)
        p = self.reader.inputs[e[0]][1]
        await r.hdel(self.deaths[p], _member(e))

    async def _clear(self, r: Redis) -> None:
        pipe = r.pipeline(transaction=False)
        for marker in self.markers.values():  # one key a command: partitions may be apart
            pipe.delete(marker)
        await pipe.execute()


def _member(e: Entry) -> bytes:
    return e[0] + b" " + e[1]
