"""Running a mesh on a Redis/Valkey Cluster (docs/cluster.md).

A mesh with P > 1 partitions keeps every key of one partition in one hash slot
(``S{<mesh>:<p>}``, docs/design.md section 5), so every script a worker runs touches a
single slot and is legal on a cluster. What a cluster still changes for a client:

- **Routing.** ``redis-py``'s ``RedisCluster`` sends each command to the primary of
  its slot. A read across streams of different slots is refused (CROSSSLOT) even when
  one node holds both, so workers and callers read each partition separately.
- **Key extraction.** For commands whose keys move (XREAD, XREADGROUP) redis-py asks
  the server with ``COMMAND GETKEYS``: one more round trip per read, always to the
  same node, and a command that an agent's ACL user is not granted. meshc's parser
  reads those keys from the arguments instead.
- **Failures.** A failover shows as lost connections, then ``CLUSTERDOWN``,
  ``TRYAGAIN`` or ``MOVED`` for a moment; to a worker these are transient, like a
  restart of a single server.
- **Replication is asynchronous.** ``MESHC_WAIT_REPLICAS=N`` makes every commit (and
  every ``submit``) wait for N replicas (:mod:`meshc.runtime.replicas`).
- **One partition is refused.** With ``partitions: 1`` the keys are the plain stream
  names, spread over slots, and a commit (input and output streams) would cross
  slots; meshc says so at start-up instead of failing on the first message.

URLs: ``redis+cluster://[user:password@]host:port[,host:port…][?options]`` (TLS:
``rediss+cluster://``), or a ``redis://`` URL with ``--cluster``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio.cluster as acluster
import redis.cluster as scluster
from meshc.runtime.errors import ConfigError, ConnectError
from meshc.runtime.reader import Reader
from meshc.runtime.spec import MeshSpec, Policy
from meshc.runtime.urls import redact
from meshc.runtime.wire import Delivery
from redis._parsers.commands import AsyncCommandsParser, CommandsParser
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
POLL_S = 0.02  # callers' reads across slots poll at this pace when there is nothing new

# What a failover looks like to a client: transient, retried like a lost connection.
# (Not RedisClusterException as a whole: redis-py also raises it for a command whose
# keys cross slots, a bug that must stop the worker, not be retried for ever.)
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ClusterDownError,
    ClusterError,
    MasterDownError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)

log = logging.getLogger("meshc.cluster")


class ClusterConfigError(ConfigError, ConnectError):
    """Raised when a cluster setting cannot work: a worker exits 2 on it (``ConfigError``)
    and a command prints it and exits 2 (``ConnectError``)."""


class PartitionsError(ClusterConfigError):
    """Raised when a mesh with one partition is pointed at a cluster.

    With one partition a stream's key is its plain name (docs/design.md section 5), so an
    agent's input and output keys sit in different slots and its commit script would
    be refused with CROSSSLOT; the mesh needs ``partitions`` > 1 to run on a cluster.
    """


# -- URLs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterUrl:
    """A parsed cluster URL: a plain URL for the first seed (with credentials, TLS and
    options, as redis-py reads them) and every seed node."""

    plain: str
    seeds: tuple[tuple[str, int], ...]


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in SCHEMES


def parse_cluster_url(url: str) -> ClusterUrl:
    """Split ``redis+cluster://user:pw@h1:p1,h2:p2/0?x=y`` into seeds and a plain URL."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ConnectError(f"not a cluster URL: {redact(url)!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = tuple(_host_port(h, url) for h in hosts.split(",") if h.strip())
    if not seeds:
        raise ConnectError(f"cluster URL {redact(url)!r} names no node (host:port)")
    if parts.path.strip("/") not in ("", "0"):
        raise ConnectError(
            f"cluster URL {redact(url)!r}: a cluster has only database 0, not {parts.path!r}"
        )
    host, port = seeds[0]
    netloc = (userinfo + "@" if userinfo else "") + f"{host}:{port}"
    return ClusterUrl(urlunsplit((scheme, netloc, "/0", parts.query, "")), seeds)


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ConnectError(f"cluster URL {redact(url)!r}: {text.strip()!r} is not host:port")
    return host.strip("[]"), int(port)


def as_cluster_url(url: str) -> str:
    """``redis://`` → ``redis+cluster://`` (``--cluster``); cluster URLs are kept."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in SCHEMES:
        return url
    if scheme in ("redis", "rediss"):
        return urlunsplit(parts._replace(scheme=scheme + "+cluster"))
    raise ConnectError(f"--cluster needs a redis:// or rediss:// URL, not {redact(url)!r}")


CLI_HELP = "the --redis / REDIS_URL address is a Redis/Valkey Cluster node (redis+cluster://)"


def cli_url(resolve: Callable[[], str], cluster: bool, explicit: str | None) -> str:
    """The URL a command uses: ``resolve()`` (``--redis``, REDIS_URL or the embedded
    server), as a cluster URL with ``--cluster``; ``explicit`` is ``--redis``."""
    if cluster and not (explicit or os.environ.get("REDIS_URL")):
        raise ConnectError(
            "--cluster needs the address of a cluster node: give --redis "
            "redis://host:port or set REDIS_URL (the embedded server is not a cluster)"
        )
    url = resolve()
    return as_cluster_url(url) if cluster else url


# -- clients ------------------------------------------------------------------------------


def sync_client(url: str, **kwargs: Any) -> scluster.RedisCluster:
    """A synchronous cluster client (bytes replies); connects at once, as redis-py does."""
    target = parse_cluster_url(url)
    kwargs.setdefault("decode_responses", False)
    nodes = [scluster.ClusterNode(h, p) for h, p in target.seeds[1:]]  # type: ignore[no-untyped-call]
    return _SyncCluster.from_url(target.plain, startup_nodes=nodes, **kwargs)


def async_client(url: str, **kwargs: Any) -> acluster.RedisCluster:
    """An asyncio cluster client (bytes replies); connects on first use."""
    target = parse_cluster_url(url)
    kwargs.setdefault("decode_responses", False)
    nodes = [acluster.ClusterNode(h, p) for h, p in target.seeds[1:]]
    return _AsyncCluster.from_url(target.plain, startup_nodes=nodes, **kwargs)


# redis-py refuses EVALSHA in cluster pipelines, since it cannot know that a script's
# keys share a slot. meshc's scripts declare every key they touch and those keys share
# one partition tag, so redis-py routes each EVALSHA by its keys like any other command.


class _AsyncPipeline(acluster.ClusterPipeline):
    def evalsha(self, sha: Any, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)


class _AsyncCluster(acluster.RedisCluster):
    """redis-py's asyncio cluster client with meshc's key parser and pipelines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_parser = _AsyncStreamKeys()

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> _AsyncPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is not supported in cluster mode")
        return _AsyncPipeline(self, transaction)  # type: ignore[abstract]


class _SyncPipeline(scluster.ClusterPipeline):
    def evalsha(self, sha: Any, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)  # type: ignore[no-untyped-call]


class _SyncCluster(scluster.RedisCluster):
    """redis-py's cluster client with meshc's key parser and pipelines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_parser.__class__ = _StreamKeys  # keeps what COMMAND returned

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> _SyncPipeline:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        pipe.__class__ = _SyncPipeline
        return cast(_SyncPipeline, pipe)


def is_cluster(client: object) -> bool:
    return isinstance(client, scluster.RedisCluster | acluster.RedisCluster)


def stream_read_keys(args: Sequence[Any]) -> list[Any] | None:
    """The keys of an XREAD/XREADGROUP call (the first half after STREAMS), else None."""
    name = _word(args[0]) if args else ""
    if name not in ("XREAD", "XREADGROUP"):
        return None
    start = 4 if name == "XREADGROUP" else 1  # skip GROUP <group> <consumer>
    for i in range(start, len(args)):
        if _word(args[i]) == "STREAMS":
            rest = list(args[i + 1 :])
            return rest[: len(rest) // 2]
    return None


def _word(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").upper()
    return str(value).upper()


class _StreamKeys(CommandsParser):
    """redis-py's parser, minus its COMMAND GETKEYS round trip for stream reads."""

    def get_keys(self, redis_conn: Any, *args: Any) -> Any:
        keys = stream_read_keys(args)
        if keys is not None:
            return keys
        return super().get_keys(redis_conn, *args)  # type: ignore[no-untyped-call]


class _AsyncStreamKeys(AsyncCommandsParser):
    """The asyncio twin of :class:`_StreamKeys`."""

    async def get_keys(self, *args: Any) -> Any:
        keys = stream_read_keys(args)
        return keys if keys is not None else await super().get_keys(*args)


def require_partitions(mesh: MeshSpec, where: str) -> None:
    """Refuse a single-partition mesh on a cluster (``where``: its URL or a name)."""
    if mesh.partitions > 1:
        return
    place = f"the cluster at {redact(where)}" if "://" in where else where
    raise PartitionsError(
        f"mesh {mesh.name!r} has one partition, so its stream keys are plain names in "
        f"different cluster slots and every commit would be refused (CROSSSLOT) on "
        f"{place}. Set `partitions:` in the mesh file to more than 1 "
        "(e.g. 16, several per primary) and `partition_key:` to the field that routes a "
        "task; or use a single server (redis:// without --cluster)"
    )


def mget(r: Any, keys: Sequence[str]) -> list[Any]:
    """MGET that also works across slots on a cluster (one MGET per slot)."""
    if isinstance(r, scluster.RedisCluster):
        return list(r.mget_nonatomic(list(keys)))
    return list(r.mget(keys))


def xread(
    r: Any, cursors: Mapping[str, str], count: int, block: int | None
) -> list[tuple[Any, Any]]:
    """XREAD over many keys; on a cluster one XREAD per key in one pipeline (a cluster
    refuses a read across slots), polling every ``POLL_S`` instead of blocking."""
    if not isinstance(r, scluster.RedisCluster):
        reply = r.xread(dict(cursors), count=count, block=block)
        return list(reply.items()) if isinstance(reply, dict) else list(reply or ())
    deadline = time.monotonic() + (block or 0) / 1000
    while True:
        pipe = r.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for key, cursor in cursors.items():
            pipe.xread({key: cursor}, count=count)
        found = [pair for reply in pipe.execute() for pair in _pairs(reply)]
        if found or block is None or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_S)


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """An XREAD reply as (key, entries) pairs (RESP2 gives a list, RESP3 a dict)."""
    if isinstance(reply, dict):
        return list(reply.items())
    return [(key, entries) for key, entries in reply or ()]


# -- reading ------------------------------------------------------------------------------


class ClusterReader(Reader):
    """Reads an agent's inputs on a cluster: one XREADGROUP per partition.

    All input streams of one partition share a slot, so they are read together; the
    partitions are read side by side. Under load, one pipeline of non-blocking reads
    (redis-py sends one per node, in parallel) fills the batch. When nothing is there,
    a blocking read per partition waits for work; the batch is handed over as soon as
    any of them answers, and the others stay in flight for the next call rather than
    being cancelled (cancelling would cost their connections). ``drain`` collects
    them at shutdown, so nothing that was read is left pending.

    The blocking reads use a client of their own: when a pipeline meets a lost node,
    redis-py closes every connection of its client, and a read in flight on one of
    them would fail in ways (AttributeError) that are not connection errors.
    """

    def __init__(
        self,
        group: str,
        consumer: str,
        inputs: dict[bytes, tuple[str, int]],
        policy: Policy,
        log: logging.Logger,
        url: str,
    ) -> None:
        super().__init__(group, consumer, inputs, policy, log)
        self._by_partition: dict[int, dict[Any, Any]] = {}
        for key, (_, p) in inputs.items():
            self._by_partition.setdefault(p, {})[key] = b">"
        self._waiting: dict[int, asyncio.Task[list[Delivery]]] = {}
        self._url = url
        self._blocking: acluster.RedisCluster | None = None

    async def read(self, r: Any, block_ms: int) -> list[Delivery]:
        out = self._collect()
        free = [p for p in self._by_partition if p not in self._waiting]
        if free:
            out += await self._read_now(r, free)
        if out:
            return out
        if free and self._blocking is None:
            # connected before the reads start: redis-py's first connection, made by
            # several reads at once, closes connections under some of them
            self._blocking = async_client(self._url)
            await self._blocking.initialize()
        for p in free:
            self._waiting[p] = asyncio.create_task(self._read_one(p, block_ms))
        if self._waiting:
            await asyncio.wait(
                self._waiting.values(),
                timeout=block_ms / 1000 + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
        return self._collect()

    async def drain(self) -> list[Delivery]:
        """Wait for the reads still in flight (what they delivered must be handled), then
        close the client of the blocking reads."""
        if self._waiting:
            await asyncio.wait(self._waiting.values())
        out = self._collect(quiet=True)
        if self._blocking is not None:
            await self._blocking.aclose()
            self._blocking = None
        return out

    async def _read_now(self, r: Any, partitions: list[int]) -> list[Delivery]:
        pipe = r.pipeline(transaction=False)
        for p in partitions:
            pipe.xreadgroup(self.group, self.consumer, self._by_partition[p], count=self.count)
        replies = await pipe.execute()
        return [d for reply in replies for d in self._deliveries(reply)]

    async def _read_one(self, partition: int, block_ms: int) -> list[Delivery]:
        assert self._blocking is not None
        streams = self._by_partition[partition]
        try:
            reply = await self._blocking.xreadgroup(
                self.group, self.consumer, streams, count=self.count, block=block_ms
            )
        except AttributeError as exc:  # a connection closed under it (see the class doc)
            raise RedisConnectionError(f"connection lost during a read: {exc}") from exc
        return self._deliveries(reply)

    def _deliveries(self, reply: Any) -> list[Delivery]:
        out: list[Delivery] = []
        for key, entries in _pairs(reply):
            stream, p = self.inputs[key]
            out += [Delivery(key, stream, p, eid, fields or {}) for eid, fields in entries]
        return out

    def _collect(self, quiet: bool = False) -> list[Delivery]:
        """Deliveries of the finished blocking reads; an error is raised only when no
        read brought anything (what was delivered must not be dropped)."""
        out: list[Delivery] = []
        error: BaseException | None = None
        for p, task in list(self._waiting.items()):
            if not task.done():
                continue
            del self._waiting[p]
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is None:
                out += task.result()
            else:
                error = error or exc
        if error is not None and not out and not quiet:
            raise error
        return out


def parse_partitions(text: str, total: int | None = None) -> list[int]:
    """``"0-3,8,10-11"`` → ``[0, 1, 2, 3, 8, 10, 11]``; checked against ``total``."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ClusterConfigError(f"partitions {text!r}: use numbers and ranges, e.g. 0-7,12")
        out += range(int(first), int(last if dash else first) + 1)
    if total is not None and any(p >= total for p in out):
        raise ClusterConfigError(f"partitions {text!r}: the mesh has partitions 0-{total - 1}")
    return sorted(set(out))


def make_reader(
    mesh: MeshSpec,
    agent: str,
    consumer: str,
    inputs: dict[bytes, tuple[str, int]],
    log: logging.Logger,
    url: str,
    group: str | None = None,
) -> Reader:
    """The reader of a worker: one XREADGROUP over every key on a single server, one per
    partition on a cluster (where a single partition is refused: commits would cross
    slots). ``group`` defaults to the agent's own."""
    policy = mesh.agents[agent].policy
    if not is_cluster_url(url):
        return Reader(group or agent, consumer, inputs, policy, log)
    require_partitions(mesh, url)
    return ClusterReader(group or agent, consumer, inputs, policy, log, url)
