"""Each terminal result, once: recorded in its task's record and pushed to its webhook.

The gateway reads the terminal streams through a consumer group of its own,
``meshc-gateway``, created at the end of each stream when a gateway first starts.
The group's cursor and pending list are the delivery state, kept on the server: a
result is acknowledged once it is recorded and, when it has a webhook, once the
webhook answered 2xx. A gateway that stops (or crashes) resumes where the group
stands, so results that arrived meanwhile are delivered, and a delivery that failed
stays pending until a retry succeeds. Retries back off exponentially (``backoff``
seconds, doubling, at most ``MAX_BACKOFF_S``); the delivery count is the pending
entry's own. After ``attempts`` tries the result is written to the failed-delivery
stream ``<mesh>:meshc-gateway:failed`` and acknowledged.

Several gateways may share the group: each claims a pending delivery with XCLAIM's
minimum idle time, so two never retry the same one at once, and a delivery that
another gateway holds is left alone while it could still be in flight.

The one window left is a crash between the receiver's 2xx and the acknowledgement:
the result is then delivered again, with the same ``X-Meshc-Delivery`` id, which a
receiver that must never act twice keeps and checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import httpx
import orjson
import redis
import redis.asyncio
from meshc import __version__
from meshc.gateway import records, signing, streams
from meshc.gateway.config import Webhooks
from meshc.ops.client import Entry, RawEntry, decode_entry
from meshc.runtime.spec import MeshSpec

GROUP = records.NAME
MAX_BACKOFF_S = 300.0
CLAIM_MARGIN_S = 5.0
PENDING_PAGE = 100
FAILED_MAXLEN = 10_000
log = logging.getLogger("meshc.gateway")


def failed_key(mesh: str) -> str:
    return f"{mesh}:{records.NAME}:failed"


def payload(stream: str, entry: Entry) -> bytes:
    """The webhook's body: the result as ``GET /tasks/{trace}`` lists it, plus its trace."""
    doc = {"trace": entry["trace"], "stream": stream, "id": entry["id"], "data": entry["data"]}
    return orjson.dumps(doc)


class ResultLog:
    """The ``meshc-gateway`` group's reader: records results, delivers webhooks."""

    def __init__(
        self,
        r: redis.asyncio.Redis,
        mesh: MeshSpec,
        consumer: str,
        webhooks: Webhooks | None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.redis, self.mesh, self.consumer, self.hooks = r, mesh, consumer, webhooks
        self.groups = streams.key_groups(mesh, mesh.terminal_streams(), streams.is_cluster(r))
        self.http = http
        self._inflight: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def setup(self) -> None:
        """The group on every terminal key, from its end ("already exists" is success)."""
        for group in self.groups:
            for key in group:
                try:
                    await self.redis.xgroup_create(key, GROUP, id="$", mkstream=True)
                except redis.ResponseError as err:
                    if "BUSYGROUP" not in str(err):
                        raise

    async def run(self) -> None:
        """Read new results and retry pending deliveries until cancelled."""
        loops = [self._read(g) for g in self.groups]
        if self.hooks is not None:
            loops.append(self._retry())
        try:
            await asyncio.gather(*loops)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _read(self, group: dict[str, str]) -> None:
        """New results; first (and after an error) this consumer's own pending ones when
        there are no webhooks, since then no retry loop would ever take them up (a
        crash between reading and acknowledging leaves them there)."""
        own = self.hooks is None
        while True:
            wanted: dict[Any, Any] = dict.fromkeys(group, "0" if own else ">")
            try:
                reply = await self.redis.xreadgroup(
                    GROUP, self.consumer, wanted, count=streams.COUNT,
                    block=None if own else streams.BLOCK_MS,
                )  # fmt: skip
                found = [
                    (group[key], key, decode_entry(eid, fields or {}))
                    for key, entries in streams.pairs(reply)
                    for eid, fields in entries
                ]
                own = own and bool(found)
                if found:
                    await self._handle(found)
            except (redis.ConnectionError, redis.TimeoutError) as err:
                log.warning("result log: %s; retrying in 1 s", err)
                own = self.hooks is None
                await asyncio.sleep(1.0)
            except redis.ResponseError as err:
                if "NOGROUP" not in str(err):
                    raise
                await self.setup()  # the stream or group was deleted under us

    async def _handle(self, found: list[tuple[str, str, Entry]]) -> None:
        """Record every result and, in the same round trip, acknowledge those with
        nowhere to go; deliver the rest (acknowledged once delivered)."""
        hooks = await records.webhooks_of(self.redis, self.mesh.name, found)
        pipe = self.redis.pipeline(transaction=False)
        records.record_results(pipe, self.mesh.name, found, hooks)
        deliver: list[tuple[str, str, Entry, str]] = []
        for (stream, key, entry), hook in zip(found, hooks, strict=True):
            target = (hook or self.hooks.url) if self.hooks else None
            if target:
                deliver.append((stream, key, entry, target))
                self._inflight.add((key, entry["id"]))  # before any await: see _retry_key
            else:
                pipe.xack(key, GROUP, entry["id"])
        try:
            await pipe.execute()
        except BaseException:
            self._inflight.difference_update((key, entry["id"]) for _, key, entry, _ in deliver)
            raise
        for stream, key, entry, target in deliver:
            self._spawn(stream, key, entry, target, 1)

    def _spawn(self, stream: str, key: str, entry: Entry, url: str, attempt: int) -> None:
        task = asyncio.create_task(self._deliver(stream, key, entry, url, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, stream: str, key: str, entry: Entry, url: str, attempt: int) -> None:
        assert self.hooks is not None and self.http is not None
        body = payload(stream, entry)
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"meshc-gateway/{__version__}",
            signing.TIMESTAMP: str(now),
            signing.SIGNATURE: signing.sign(self.hooks.secret, now, body),
            signing.DELIVERY: f"{key}/{entry['id']}",
            signing.ATTEMPT: str(attempt),
        }
        try:
            answer = await self.http.post(url, content=body, headers=headers)
            ok, why = answer.is_success, f"HTTP {answer.status_code}"
        except httpx.HTTPError as err:
            ok, why = False, f"{type(err).__name__}: {err}"
        try:
            if ok:
                await self._ack([(key, entry["id"])])
            else:
                log.warning("webhook %s for %s failed (try %d): %s", url, key, attempt, why)
        finally:
            self._inflight.discard((key, entry["id"]))

    async def _ack(self, done: list[tuple[str, str]]) -> None:
        if not done:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key, eid in done:
            pipe.xack(key, GROUP, eid)
        await pipe.execute()

    async def _retry(self) -> None:
        assert self.hooks is not None
        tick = min(1.0, self.hooks.backoff)
        while True:
            await asyncio.sleep(tick)
            try:
                for group in self.groups:
                    for key, stream in group.items():
                        await self._retry_key(key, stream)
            except (redis.ConnectionError, redis.TimeoutError) as err:
                log.warning("webhook retries: %s", err)
            except redis.ResponseError as err:
                if "NOGROUP" not in str(err):
                    raise

    async def _retry_key(self, key: str, stream: str) -> None:
        pending = await self.redis.xpending_range(key, GROUP, "-", "+", PENDING_PAGE)
        for item in pending:
            eid = _text(item["message_id"])
            if (key, eid) in self._inflight:
                continue
            tries, idle = int(item["times_delivered"]), int(item["time_since_delivered"])
            wait_ms = int(self._wait_before(tries, _text(item["consumer"])) * 1000)
            if idle < wait_ms:
                continue
            self._inflight.add((key, eid))  # no second claim while this one is under way
            try:
                claimed = await self.redis.xclaim(key, GROUP, self.consumer, wait_ms, [eid])
                got = cast(list[RawEntry], claimed or [])
                if got:  # else another gateway took it first
                    await self._again(stream, key, decode_entry(got[0][0], got[0][1] or {}), tries)
                else:
                    self._inflight.discard((key, eid))
            except BaseException:
                self._inflight.discard((key, eid))
                raise

    def _wait_before(self, tries: int, consumer: str) -> float:
        """Backoff after ``tries`` attempts; longer for another gateway's delivery,
        which may still be waiting for its answer."""
        assert self.hooks is not None
        wait = min(MAX_BACKOFF_S, self.hooks.backoff * 2.0 ** (tries - 1))
        if consumer != self.consumer:
            wait = max(wait, self.hooks.timeout + CLAIM_MARGIN_S)
        return wait

    async def _again(self, stream: str, key: str, entry: Entry, tries: int) -> None:
        """Retry one claimed delivery, or give it up after ``attempts`` tries."""
        assert self.hooks is not None
        record = await records.load(self.redis, self.mesh.name, entry["trace"])
        url = (record.webhook if record else "") or self.hooks.url
        if not url or tries >= self.hooks.attempts:
            self._inflight.discard((key, entry["id"]))
        if not url:  # the task was forgotten and there is no global webhook
            await self._ack([(key, entry["id"])])
        elif tries >= self.hooks.attempts:
            await self._give_up(stream, key, entry, url, tries)
        else:
            self._spawn(stream, key, entry, url, tries + 1)

    async def _give_up(self, stream: str, key: str, entry: Entry, url: str, tries: int) -> None:
        log.error("webhook %s for %s: giving up after %d attempts", url, entry["id"], tries)
        fields: dict[Any, Any] = {
            "stream": stream, "key": key, "id": entry["id"], "trace": entry["trace"],
            "url": url, "attempts": str(tries),
        }  # fmt: skip
        await self.redis.xadd(failed_key(self.mesh.name), fields, maxlen=FAILED_MAXLEN)
        await self._ack([(key, entry["id"])])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
