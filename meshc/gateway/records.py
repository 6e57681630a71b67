"""What the gateway remembers about a task it submitted, kept on the server.

One hash per task, ``<mesh>:meshc-gateway:task:<trace>``, written *before* the task
enters the intake (so the result reader, which may see the result before ``submit``
returns, always finds it) and expiring after ``--keep``. It holds the intake, the
intake key and entry id once written (where an event stream starts reading), the
task's webhook, and a copy of each terminal result as the result reader records it,
so ``GET /tasks/{trace}`` is one HGETALL however old the result or however trimmed
the terminal stream. Any number of gateways of one mesh share these records.

The name ``meshc-gateway`` (also the consumer group's) has a hyphen, so it can never
be the name of an agent, whose keys are ``<mesh>:<agent>:…``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
import redis.asyncio
from meshc.ops.client import Entry
from meshc.runtime.wire import id_order

NAME = "meshc-gateway"
RESULT = "result:"


def record_key(mesh: str, trace: str) -> str:
    return f"{mesh}:{NAME}:task:{trace}"


@dataclass(frozen=True)
class ResultItem:
    """One terminal result of a task, as the API returns it."""

    stream: str
    id: str
    data: Any

    def as_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "id": self.id, "data": self.data}

    def field(self, key: str) -> str:
        """The record's field for this result: unique per server key and entry id."""
        return f"{RESULT}{key}/{self.id}"


@dataclass(frozen=True)
class TaskRecord:
    """A task as the gateway knows it; ``results`` in the order they were written."""

    trace: str
    intake: str
    key: str
    entry: str
    webhook: str
    results: list[ResultItem]


def create(
    r: redis.Redis, mesh: str, trace: str, intake: str, webhook: str | None, keep: float
) -> None:
    """The record of a task about to be submitted (synchronous: the submit thread)."""
    fields = {"intake": intake, "webhook": webhook or ""}
    pipe = r.pipeline(transaction=False)
    pipe.hset(record_key(mesh, trace), mapping=fields)  # type: ignore[arg-type]
    pipe.pexpire(record_key(mesh, trace), max(1, int(keep * 1000)))
    pipe.execute()


def submitted(r: redis.Redis, mesh: str, trace: str, key: str, entry_id: str) -> None:
    """Where the task's intake entry is, once written."""
    r.hset(record_key(mesh, trace), mapping={"key": key, "entry": entry_id})


async def load(r: redis.asyncio.Redis, mesh: str, trace: str) -> TaskRecord | None:
    """The task's record, or None when no gateway submitted it (or it expired)."""
    raw = cast(dict[bytes, bytes], await r.hgetall(record_key(mesh, trace)))
    if not raw:
        return None
    text = {k.decode(): v for k, v in raw.items()}
    results = [ResultItem(**orjson.loads(v)) for k, v in text.items() if k.startswith(RESULT)]
    results.sort(key=lambda item: id_order(item.id))
    return TaskRecord(
        trace=trace,
        intake=text.get("intake", b"").decode(),
        key=text.get("key", b"").decode(),
        entry=text.get("entry", b"").decode(),
        webhook=text.get("webhook", b"").decode(),
        results=results,
    )


async def webhooks_of(
    r: redis.asyncio.Redis, mesh: str, found: list[tuple[str, str, Entry]]
) -> list[str | None]:
    """Per result ``(stream, key, entry)``, its task's webhook ('' when it has none),
    or None when the task has no record (not submitted through a gateway, or forgotten)."""
    pipe = r.pipeline(transaction=False)
    for _, _, entry in found:
        pipe.hmget(record_key(mesh, entry["trace"]), ["intake", "webhook"])
    rows = await pipe.execute()
    return [None if intake is None else (hook or b"").decode() for intake, hook in rows]


def record_results(
    pipe: Any, mesh: str, found: list[tuple[str, str, Entry]], hooks: list[str | None]
) -> None:
    """Queue on ``pipe`` a copy of each result into its task's record (tasks that have
    one, as :func:`webhooks_of` found)."""
    for (stream, key, entry), hook in zip(found, hooks, strict=True):
        if hook is not None:
            item = ResultItem(stream, entry["id"], entry["data"])
            field = item.field(key)
            pipe.hset(record_key(mesh, entry["trace"]), field, orjson.dumps(item.as_json()))
