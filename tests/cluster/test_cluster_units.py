"""The small parts of cluster support: URLs, key extraction, partitions, WAIT, health."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from meshc.runtime import cluster, scripts
from meshc.runtime.cluster import (
    ClusterConfigError,
    PartitionsError,
    as_cluster_url,
    cli_url,
    parse_cluster_url,
    parse_partitions,
    stream_read_keys,
)
from meshc.runtime.connect import ConnectError, ServerUnreachable, connect, redact
from meshc.runtime.process import health
from meshc.runtime.process.agent import run_agent
from meshc.runtime.replicas import ReplicaWait
from meshc.runtime.spec import AgentSpec, MeshSpec, StreamSpec
from meshc.runtime.transport import make_client
from meshc.testing.cluster import LocalCluster
from meshc.testing.server import TestServer
from pydantic import BaseModel


class Job(BaseModel):
    n: int


def _mesh(partitions: int) -> MeshSpec:
    streams = {s: StreamSpec(s, Job) for s in ("j.in", "j.out")}
    work = AgentSpec("work", "specialist", ("j.in",), ("j.out",), "x:y")
    return MeshSpec("jobs", 1, streams, {"work": work}, partitions=partitions)


def test_cluster_urls() -> None:
    target = parse_cluster_url("redis+cluster://u:pw@h1:7000,h2:7001/0?socket_timeout=3")
    assert target.seeds == (("h1", 7000), ("h2", 7001))
    assert target.plain == "redis://u:pw@h1:7000/0?socket_timeout=3"
    assert parse_cluster_url("rediss+cluster://h:1").plain == "rediss://h:1/0"
    assert redact("redis+cluster://u:pw@h1:1,h2:2") == "redis+cluster://u:***@h1:1,h2:2"
    assert as_cluster_url("rediss://h:1/0") == "rediss+cluster://h:1/0"
    assert as_cluster_url("redis+cluster://h:1") == "redis+cluster://h:1"
    for bad in ("redis+cluster://", "redis+cluster://h", "redis+cluster://h:1/3"):
        with pytest.raises(ConnectError):
            parse_cluster_url(bad)
    with pytest.raises(ConnectError, match="--cluster needs a redis://"):
        as_cluster_url("unix:///tmp/v.sock")


def test_cluster_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert cli_url(lambda: "redis://h:1", False, None) == "redis://h:1"
    assert cli_url(lambda: "redis://h:1", True, "redis://h:1") == "redis+cluster://h:1"
    with pytest.raises(ConnectError, match="needs the address of a cluster node"):
        cli_url(lambda: "redis://embedded:1", True, None)
    monkeypatch.setenv("REDIS_URL", "redis://h:2")
    assert cli_url(lambda: "redis://h:2", True, None) == "redis+cluster://h:2"


def test_stream_read_keys_without_asking_the_server() -> None:
    args = ("XREADGROUP", "GROUP", "g", "STREAMS", "COUNT", 5, "BLOCK", 10, "STREAMS",
            b"a{m:1}", b"b{m:1}", ">", ">")  # fmt: skip
    assert stream_read_keys(args) == [b"a{m:1}", b"b{m:1}"]  # a consumer named STREAMS
    assert stream_read_keys((b"XREAD", b"COUNT", 1, b"STREAMS", "k", "0")) == ["k"]
    assert stream_read_keys(("XADD", "k", "*", "f", "v")) is None


def test_partition_lists() -> None:
    assert parse_partitions("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_partitions("5,1,1") == [1, 5]
    for bad in ("a", "1-", "-2", ""):
        with pytest.raises(ClusterConfigError):
            parse_partitions(bad)
    with pytest.raises(ClusterConfigError, match="0-15"):
        parse_partitions("0-16", total=16)


def test_replica_wait_settings() -> None:
    assert not ReplicaWait.from_env({})
    wait = ReplicaWait.from_env({"MESHC_WAIT_REPLICAS": "2", "MESHC_WAIT_TIMEOUT_MS": "50"})
    assert wait and wait.replicas == 2 and wait.timeout_ms == 50
    with pytest.raises(ClusterConfigError, match="MESHC_WAIT_REPLICAS"):
        ReplicaWait.from_env({"MESHC_WAIT_REPLICAS": "one"})


def test_one_partition_is_refused_before_anything_runs() -> None:
    with pytest.raises(PartitionsError, match="partitions:"):
        cluster.require_partitions(_mesh(1), "redis+cluster://u:secret@h:1")
    try:
        cluster.require_partitions(_mesh(1), "redis+cluster://u:secret@h:1")
    except PartitionsError as err:
        assert "secret" not in str(err)
    cluster.require_partitions(_mesh(4), "redis+cluster://h:1")
    # a worker exits 2 (a setting to fix), before connecting to anything
    assert run_agent(_mesh(1), "work", None, redis_url="redis+cluster://127.0.0.1:1") == 2


def test_nothing_answers_at_a_cluster_url() -> None:
    with pytest.raises(ServerUnreachable, match="no usable cluster"):
        connect("redis+cluster://127.0.0.1:1")


def test_a_single_server_is_not_a_cluster() -> None:
    with TestServer() as url, pytest.raises(ServerUnreachable, match="no usable cluster"):
        connect(url.replace("redis://", "redis+cluster://"))


def test_wait_on_a_single_server_without_replicas_is_reported() -> None:
    """WAIT returns 0 after its timeout; the commit itself stands."""
    with TestServer() as url:

        async def main() -> tuple[list[object], int, int]:
            r = make_client(url)
            script = scripts.Script("redis.call('INCR', KEYS[1]) return 1")
            wait = ReplicaWait(1, 50)
            replies = await wait.many(script, r, [((b"k",), ())])
            value = int(await r.get("k") or 0)
            await r.aclose()
            return replies, value, wait.short

        replies, value, short = asyncio.run(main())
        assert replies == [1] and value == 1 and short >= 1


def test_wait_on_a_cluster_with_replicas_is_acknowledged(tmp_path: Path) -> None:
    with LocalCluster(3, 1, folder=tmp_path / "c") as c:

        async def main() -> tuple[list[object], int]:
            r = make_client(c.url)
            script = scripts.Script("redis.call('INCR', KEYS[1]) return 1")
            wait = ReplicaWait(1, 1000)
            calls = [((f"k{{m:{p}}}".encode(),), ()) for p in range(6)]  # 3 nodes
            replies = await wait.many(script, r, calls)
            await r.aclose()
            return replies, wait.short

        assert asyncio.run(main()) == ([1] * 6, 0)


def test_health_probe(tmp_path: Path) -> None:
    beat = tmp_path / "alive"
    assert health.main([str(beat)]) == 1  # no heartbeat yet
    health.Heartbeat.from_env({"MESHC_HEALTH_FILE": str(beat)}).beat()
    assert health.main([str(beat), "--max-age", "5"]) == 0
    old = time.time() - 60
    import os

    os.utime(beat, (old, old))
    assert health.main([str(beat), "--max-age", "30"]) == 1
    health.Heartbeat(None).beat()  # no file configured: nothing happens
