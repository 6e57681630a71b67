"""The caller's side of a mesh: submit tasks, wait for results, tail streams.

``meshc submit``, ``meshc tail`` and applications use :class:`MeshClient`. It writes
root entries in the wire format of docs/design.md section 5 under the producer's name (the
intake keeps exactly one writer), routes each task to its partition, and refuses new
work while the intake's backlog is over its bound, because a queue that grows without
limit only turns overload into latency and lost memory. Results are read from terminal
streams with plain XREAD, never through a consumer group, so any number of callers can
wait on the same stream without taking results from one another.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

import orjson
import redis
from meshc.runtime import cluster, keys, replicas
from meshc.runtime.connect import MeshOpsError, connect
from meshc.runtime.keys import stream_keys
from meshc.runtime.spec import MeshSpec
from meshc.runtime.telemetry import new_trace, tracing
from meshc.runtime.wire import AGENT, ATTEMPT, DATA, PARENT, SCHEMA, TRACE, id_order
from pydantic import BaseModel, ValidationError

PIPELINE_CHUNK = 500
READ_COUNT = 1000
WAIT_MARGIN_MS = 5_000
# One blocking XREAD of ``wait_many`` waits at most this long, well under redis-py's
# default socket read timeout (5 s in redis-py 8), which would otherwise end a longer
# BLOCK with TimeoutError; the loop waits out the rest of the caller's timeout.
WAIT_BLOCK_MS = 1_000


class SubmitError(MeshOpsError):
    """Raised when a task cannot be submitted: unknown stream, invalid or oversize payload."""


class BackpressureError(SubmitError):
    """Raised when the intake's backlog is at its ``max_backlog`` bound; retry later."""

    def __init__(self, stream: str, backlog: int, bound: int, adding: int = 1) -> None:
        self.stream, self.backlog, self.bound = stream, backlog, bound
        super().__init__(
            f"refused: stream {stream!r} has {backlog} entries not yet processed and its "
            f"bound is max_backlog={bound} (adding {adding} would exceed it); "
            "wait for the workers to catch up, add replicas, or raise max_backlog"
        )


class PayloadTooLarge(SubmitError):
    """Raised when a task is over the ``max_payload_bytes`` of the agents reading it."""


class WaitTimeout(MeshOpsError):
    """Raised by :meth:`MeshClient.wait` when no result with the trace arrived in time."""


class Entry(TypedDict):
    """A decoded stream entry; ``data`` is the JSON payload (None if unreadable);
    ``schema`` the writer's mesh version and type fingerprint, when it wrote one."""

    id: str
    trace: str
    parent: str
    agent: str
    attempt: int
    data: Any
    schema: NotRequired[str]


@dataclass(frozen=True)
class Submitted:
    """What ``submit`` wrote: the task's trace, its entry id, and the stream/key used."""

    trace: str
    entry_id: str
    stream: str
    key: str
    replicated: bool | None = None  # with MESHC_WAIT_REPLICAS: did enough replicas ack?


@dataclass(frozen=True)
class Result:
    """A result entry read from a terminal stream."""

    stream: str
    key: str
    entry: Entry

    @property
    def trace(self) -> str:
        return self.entry["trace"]

    @property
    def data(self) -> Any:
        return self.entry["data"]


def decode_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    """Read the wire format; an entry with ``data`` alone is a root whose trace is its id."""
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(DATA)
    try:
        data = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        data = None
    entry = Entry(
        id=eid,
        trace=_text(fields, TRACE) or eid,
        parent=_text(fields, PARENT),
        agent=_text(fields, AGENT),
        attempt=int(_text(fields, ATTEMPT) or 1),
        data=data,
    )
    if SCHEMA in fields:
        entry["schema"] = _text(fields, SCHEMA)
    return entry


def raw_payload(raw: bytes | None) -> dict[str, str] | None:
    """A payload that is not JSON as it was stored (None for JSON or no payload): what
    was sent is the clue to why it was dead-lettered. UTF-8 text as it is, any other
    bytes in base64; ``encoding`` says which."""
    if raw is None:
        return None
    try:
        orjson.loads(raw)
        return None
    except orjson.JSONDecodeError:
        pass
    try:
        return {"encoding": "utf-8", "value": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "value": base64.b64encode(raw).decode("ascii")}


def _text(fields: dict[bytes, bytes], name: bytes) -> str:
    value = fields.get(name)
    return value.decode("utf-8", "replace") if value is not None else ""


RawEntry = tuple[bytes, dict[bytes, bytes]]


def read_range(
    r: redis.Redis, key: str, start: str = "-", end: str = "+", count: int | None = None
) -> list[RawEntry]:
    """XRANGE with the reply typed as raw bytes (redis-py's stubs allow str and None)."""
    return cast(list[RawEntry], r.xrange(key, min=start, max=end, count=count))


def stream_backlog(r: redis.Redis, key: str, cap: int = 100_000) -> int:
    """Entries of ``key`` that some group has not finished (lag + pending, worst group).

    With no group yet (no worker has started) nobody has consumed anything: XLEN.
    """
    try:
        groups = r.xinfo_groups(key)
    except redis.ResponseError:  # no such key
        return 0
    if not groups:
        return int(r.xlen(key))
    return max(group_lag(r, key, g, cap) + int(g["pending"]) for g in groups)


def group_lag(r: redis.Redis, key: str, group: dict[str, Any], cap: int = 100_000) -> int:
    """Entries not yet delivered to a group; counted by hand (up to ``cap``) when the
    server cannot say (``lag`` is nil after deletions or trimming below the cursor)."""
    if group.get("lag") is not None:
        return int(group["lag"])
    last = group["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else str(last)
    return len(read_range(r, key, start="(" + last, count=cap))


@dataclass(frozen=True)
class _Prepared:
    """A validated task ready to write: its key, trace and wire fields."""

    key: str
    trace: str
    fields: dict[str, bytes | str]


class MeshClient:
    """Submit, wait and tail on one mesh; pass a URL or an existing client."""

    def __init__(
        self, mesh: MeshSpec, url: str | None = None, *, client: redis.Redis | None = None
    ) -> None:
        if client is None and url is None:
            raise ValueError("MeshClient needs a url or a client")
        self.mesh = mesh
        self.redis = client if client is not None else connect(url or "")
        self.replica_wait = replicas.ReplicaWait.from_env()  # MESHC_WAIT_REPLICAS

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submit ---------------------------------------------------------------------

    def submit(
        self,
        payload: dict[str, Any] | BaseModel,
        stream: str | None = None,
        *,
        trace: str | None = None,
    ) -> Submitted:
        """Validate, route and write one task; refuse it when the intake is full.

        ``trace`` lets a caller that must record the task before it exists (the HTTP
        gateway, whose result reader may see the result before ``submit`` returns)
        choose the trace; by default it is a fresh random id.
        """
        return self.submit_many([payload], stream, traces=None if trace is None else [trace])[0]

    def submit_many(
        self,
        payloads: Iterable[dict[str, Any] | BaseModel],
        stream: str | None = None,
        *,
        traces: Sequence[str] | None = None,
    ) -> list[Submitted]:
        """Validate every task first (all or nothing), then write them pipelined."""
        name = self._intake(stream)
        items = list(payloads)
        chosen = list(traces) if traces is not None else [new_trace() for _ in items]
        if len(chosen) != len(items):
            raise ValueError(f"{len(items)} payloads but {len(chosen)} traces")
        prepared = [self._prepare(name, p, t) for p, t in zip(items, chosen, strict=True)]
        self._check_backlog(name, [p.key for p in prepared])
        if cluster.is_cluster(self.redis):  # tasks nobody could process: say so now
            cluster.require_partitions(self.mesh, "this cluster")
        out: list[Submitted] = []
        wait = self.replica_wait
        spans = tracing.active()
        for start in range(0, len(prepared), PIPELINE_CHUNK):
            chunk = prepared[start : start + PIPELINE_CHUNK]
            roots = [spans.root(self.mesh.name, name, p.fields) for p in chunk] if spans else []
            pipe = self.redis.pipeline(transaction=False)
            for p in chunk:
                pipe.xadd(p.key, p.fields)  # type: ignore[arg-type]
            if wait:  # on the connections that wrote, so WAIT counts these writes
                wait.queue(pipe, self.redis, [p.key for p in chunk])
            replies = pipe.execute()
            ids, acks = replies[: len(chunk)], replies[len(chunk) :]
            replicated = wait.check(acks) if wait else None
            for p, eid in zip(chunk, ids, strict=True):
                out.append(Submitted(p.trace, eid.decode(), name, p.key, replicated))
            for span, eid in zip(roots, ids, strict=False):
                span.set_attribute("meshc.entry_id", eid.decode())
                span.end()
        return out

    def _intake(self, stream: str | None) -> str:
        intakes = self.mesh.intake_streams()
        if stream is None:
            if len(intakes) != 1:
                raise SubmitError(f"name the stream to submit to: one of {', '.join(intakes)}")
            return intakes[0]
        if stream not in intakes:
            raise SubmitError(
                f"cannot submit to {stream!r}: tasks enter through an intake stream "
                f"written by a producer ({', '.join(intakes) or 'none declared'})"
            )
        return stream

    def _prepare(self, stream: str, payload: dict[str, Any] | BaseModel, trace: str) -> _Prepared:
        doc = self._validate(stream, payload)
        data = orjson.dumps(doc)
        self._check_size(stream, len(data))
        p = keys.partition_of(self._route_value(doc, trace), self.mesh.partitions)
        key = keys.stream_key(stream, self.mesh.name, p, self.mesh.partitions)
        header = {"trace": trace, "parent": "", "agent": self._producer(stream), "attempt": "1"}
        return _Prepared(key, trace, {"data": data, **header})

    def _validate(self, stream: str, payload: dict[str, Any] | BaseModel) -> dict[str, Any]:
        model = self.mesh.streams[stream].model
        try:
            if isinstance(payload, BaseModel) and not isinstance(payload, model):
                payload = payload.model_dump(by_alias=True)
            valid = payload if isinstance(payload, model) else model.model_validate(payload)
        except ValidationError as err:
            raise SubmitError(f"payload does not fit {stream!r} ({model.__name__}): {err}") from err
        return valid.model_dump(mode="json", by_alias=True)

    def _check_size(self, stream: str, size: int) -> None:
        limits = [
            a.policy.max_payload_bytes for a in self.mesh.agents.values() if stream in a.reads
        ]
        if limits and size > min(limits):
            raise PayloadTooLarge(
                f"payload of {size} bytes is over the {min(limits)}-byte limit of the "
                f"agents reading {stream!r}; they would dead-letter it"
            )

    def _route_value(self, doc: dict[str, Any], trace: str) -> str:
        """The partition key's value as text (JSON for non-strings), else the trace."""
        field = self.mesh.partition_key
        value = doc.get(field) if field else None
        if value is None:
            return trace
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    def _producer(self, stream: str) -> str:
        for agent in self.mesh.agents.values():
            if agent.role == "producer" and stream in agent.writes:
                return agent.name
        raise SubmitError(f"no producer writes {stream!r}")

    def _check_backlog(self, stream: str, targets: list[str]) -> None:
        bound = self.mesh.streams[stream].max_backlog
        if bound is None:
            return
        for key in sorted(set(targets)):
            adding = targets.count(key)
            backlog = stream_backlog(self.redis, key, cap=bound + 1)
            if backlog + adding > bound:
                raise BackpressureError(stream, backlog, bound, adding)

    # -- wait -----------------------------------------------------------------------

    def wait(
        self,
        trace: str | Submitted,
        stream: str | None = None,
        timeout: float = 30.0,
        since: str = "0",
    ) -> Result:
        """The first result carrying ``trace`` on the terminal stream(s).

        Given a :class:`Submitted`, the scan starts shortly before its entry id instead
        of at the beginning of the terminal stream.
        """
        if isinstance(trace, Submitted):
            since, trace = _just_before(trace.entry_id), trace.trace
        found = self.wait_many([trace], stream=stream, timeout=timeout, since=since)
        if trace not in found:
            raise WaitTimeout(f"no result for trace {trace} within {timeout:g} s")
        return found[trace]

    def wait_many(
        self,
        traces: Iterable[str],
        stream: str | None = None,
        timeout: float = 30.0,
        since: str = "0",
    ) -> dict[str, Result]:
        """Results for many traces from one pass over the terminal stream(s).

        Returns what arrived before ``timeout``; traces missing from the dict timed out.
        """
        wanted = set(traces)
        cursors = {k: since for k in self._result_keys(stream)}
        names = {k: n for n in self._result_streams(stream) for k in stream_keys(self.mesh, n)}
        found: dict[str, Result] = {}
        deadline = time.monotonic() + timeout
        block: int | None = None
        while wanted:
            batch = self._xread(cursors, block)
            for key, entries in _by_key(batch):
                for eid, fields in entries:
                    cursors[key] = eid.decode()
                    entry = decode_entry(eid, fields)
                    if entry["trace"] in wanted:
                        wanted.discard(entry["trace"])
                        found[entry["trace"]] = Result(names[key], key, entry)
            remaining = deadline - time.monotonic()
            if not wanted or remaining <= 0:
                break
            block = None if batch else max(1, min(int(remaining * 1000), WAIT_BLOCK_MS))
        return found

    def _result_streams(self, stream: str | None) -> list[str]:
        if stream is not None:
            if stream not in self.mesh.streams:
                raise SubmitError(f"unknown stream {stream!r}")
            return [stream]
        terminal = list(self.mesh.terminal_streams())
        if not terminal:
            raise SubmitError(f"mesh {self.mesh.name!r} has no terminal stream to wait on")
        return terminal

    def _result_keys(self, stream: str | None) -> list[str]:
        return [k for n in self._result_streams(stream) for k in stream_keys(self.mesh, n)]

    # -- tail -----------------------------------------------------------------------

    def tail(self, stream: str, from_id: str = "0", follow: bool = False) -> Iterator[Entry]:
        """Entries after ``from_id`` (``"$"``: only new ones); with ``follow``, forever.

        Without ``follow`` it stops at what the stream held when called, so tailing a
        busy stream still ends. Order is kept within each partition.
        """
        if stream not in self.mesh.streams:
            raise SubmitError(f"unknown stream {stream!r}")
        keys_ = stream_keys(self.mesh, stream)
        cursors = {k: (self._last_id(k) if from_id == "$" else from_id) for k in keys_}
        ends = None if follow else {k: self._last_id(k) for k in keys_}
        while True:
            if ends is not None:
                cursors = {k: c for k, c in cursors.items() if id_order(c) < id_order(ends[k])}
            if not cursors:
                return
            batch = self._xread(cursors, block=1000 if follow else None)
            if not batch and not follow:
                return
            for key, entries in _by_key(batch):
                for eid, fields in entries:
                    cursors[key] = eid.decode()
                    if ends is None or id_order(cursors[key]) <= id_order(ends[key]):
                        yield decode_entry(eid, fields)

    def _xread(self, cursors: dict[str, str], block: int | None) -> Any:
        """XREAD over the keys (one read per slot on a cluster, which refuses one across)."""
        return cluster.xread(self.redis, cursors, READ_COUNT, block)

    def _last_id(self, key: str) -> str:
        last = cast(list[RawEntry], self.redis.xrevrange(key, count=1))
        return last[0][0].decode() if last else "0-0"


def _by_key(batch: Any) -> Iterator[tuple[str, list[tuple[bytes, dict[bytes, bytes]]]]]:
    """XREAD's reply as (key, entries) pairs (RESP2 gives a list, RESP3 a dict)."""
    items = batch.items() if isinstance(batch, dict) else (batch or [])
    for key, entries in items:
        yield (
            (key.decode() if isinstance(key, bytes) else key),
            (entries[0] if isinstance(batch, dict) else entries),
        )


def _just_before(entry_id: str) -> str:
    """A cursor a little before ``entry_id``: results come later, give or take clocks."""
    ms, _ = id_order(entry_id)
    return f"{max(0, ms - WAIT_MARGIN_MS)}-0"
