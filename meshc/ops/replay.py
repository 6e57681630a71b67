"""``meshc replay``: run one agent again over retained entries of its input.

The entries between ``--from`` and ``--to`` are read through a fresh consumer group
(``meshc-replay-<agent>-<random>``), created just before the first of them, so the
agent's live group is untouched. A worker of the agent, built from the mesh, runs
them and commits through the normal path: its outputs go to the agent's output
streams with the usual header (the copied task fields included), failures are retried
and dead-lettered as usual. Entries past ``--to`` that the worker reads are not run;
when every entry of the range is committed the worker stops, and the group is
destroyed (with anything it still held) at the end, whatever happened.

Aggregators are not replayed: their joins' ``done`` markers would count every partial
as late.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from meshc.runtime import keys
from meshc.runtime.errors import MeshOpsError
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import Delivery, id_order, short_error
from meshc.runtime.worker import Worker

MAX_SEQ = 18446744073709551615  # the largest sequence number of an entry id


class ReplayError(MeshOpsError):
    """The range or the agent cannot be replayed (nothing is changed)."""


def parse_point(text: str, end: bool = False) -> tuple[int, int]:
    """An entry id (``1700000000000-0``, or ms alone) or an ISO 8601 time (UTC unless
    it says otherwise) as (ms, seq); a bare ms or a time at the end of a range covers
    every entry of that millisecond."""
    raw = text.strip()
    ms, dash, seq = raw.partition("-")
    if ms.isdigit() and (not dash or seq.isdigit()):
        return int(ms), int(seq) if dash else (MAX_SEQ if end else 0)
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise ReplayError(
            f"{text!r}: give an entry id (1796204630809-0) or a time (2026-12-02T09:43:00Z)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000), MAX_SEQ if end else 0


@dataclass
class Range:
    """Entries of the agent's inputs in the range, per stream key."""

    start: tuple[int, int]
    end: tuple[int, int]
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _id(point: tuple[int, int]) -> str:
    return f"{point[0]}-{point[1]}"


def measure(client: redis.Redis, mesh: MeshSpec, agent: str, start: str,
            end: str | None) -> Range:  # fmt: skip
    """Count what the range holds; ReplayError for a range outside what is retained."""
    spec = mesh.agents.get(agent)
    if spec is None or not spec.reads:
        readers = ", ".join(sorted(n for n, a in mesh.agents.items() if a.reads))
        raise ReplayError(f"mesh {mesh.name} has no agent {agent!r} that reads (agents: {readers})")
    if spec.role == "aggregator":
        raise ReplayError(
            f"{agent} is an aggregator: its joins are done, so a replay would only count "
            "late partials; replay the lanes before it instead"
        )
    lo, hi = parse_point(start), parse_point(end, True) if end else (MAX_SEQ, MAX_SEQ)
    if hi < lo:
        raise ReplayError(f"--to {end} lies before --from {start}")
    counts, oldest, newest = {}, [], []
    for stream in spec.reads:
        for key in keys.stream_keys(mesh, stream):
            first: list[Any] = client.xrange(key, count=1) or []
            last: list[Any] = client.xrevrange(key, count=1) or []
            if first:
                oldest.append(id_order(first[0][0]))
                newest.append(id_order(last[0][0]))
            counts[key] = _count(client, key, _id(lo), _id(hi))
    if not oldest:
        raise ReplayError(f"{', '.join(spec.reads)}: nothing is retained to replay")
    if lo < min(oldest) and not sum(counts.values()):
        why = "it ends before the oldest entry retained"
        raise ReplayError(_outside(lo, hi, min(oldest), max(newest), why))
    if not sum(counts.values()):
        raise ReplayError(_outside(lo, hi, min(oldest), max(newest), "no entry lies in it"))
    return Range(lo, hi, counts)


def _outside(lo: Any, hi: Any, old: Any, new: Any, why: str) -> str:
    last = "the end" if hi[0] == MAX_SEQ else _id(hi)
    return (
        f"the range {_id(lo)} to {last} holds nothing to replay ({why}): the input retains "
        f"entries {_id(old)} to {_id(new)}"
    )


def _count(client: redis.Redis, key: str, lo: str, hi: str) -> int:
    total, cursor = 0, lo
    while True:
        page: list[Any] = client.xrange(key, cursor, hi, count=1000) or []
        total += len(page)
        if len(page) < 1000:
            return total
        cursor = "(" + page[-1][0].decode()


class _ReplayWorker(Worker):
    """A worker that runs nothing past ``end`` (its driver stops it once the range is
    committed)."""

    end: tuple[int, int] = (MAX_SEQ, MAX_SEQ)

    def dispatch(self, deliveries: list[Delivery]) -> None:
        # Past the range: left pending in the replay group, which is destroyed at the end
        # (another input, or partition, may still hold entries of the range).
        super().dispatch([d for d in deliveries if id_order(d.entry_id) <= self.end])


def replay(client: redis.Redis, url: str, mesh: MeshSpec, agent: str, handler: Any,
           rng: Range) -> dict[str, int]:  # fmt: skip
    """Run the range through a fresh group; the worker's figures."""
    group = f"meshc-replay-{agent}-{secrets.token_hex(4)}"
    before = _before(rng.start)
    keys_ = list(rng.counts)
    try:
        for key in keys_:
            client.xgroup_create(key, group, id=before)
        stop = threading.Event()
        worker = _ReplayWorker(mesh, agent, handler, redis_url=url, stop=stop, group=group,
                               consumer=f"{group}-0")  # fmt: skip
        worker.end = rng.end
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                asyncio.run(worker.run())
            except Exception as exc:  # reported below, as one line
                errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        while thread.is_alive():
            if worker.stats.committed >= rng.total:
                stop.set()
            thread.join(0.1)
        if errors or worker.exit_code or worker.stats.committed < rng.total:
            why = short_error(errors[0]) if errors else f"exit code {worker.exit_code}"
            done = f"{worker.stats.committed} of {rng.total} entries committed"
            raise ReplayError(f"the replay stopped before the end of the range ({why}): {done}")
        s = worker.stats
        return {"committed": s.committed, "failed": s.failed, "dead_lettered": s.dead_lettered}
    finally:
        for key in keys_:
            with contextlib.suppress(redis.ResponseError):
                client.xgroup_destroy(key, group)


def _before(point: tuple[int, int]) -> str:
    """The id just before ``point``: where a group starts to deliver ``point`` first."""
    ms, seq = point
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{MAX_SEQ}" if ms > 0 else "0-0"
