"""MeshClient against a real server: wire format, routing, backpressure, wait and tail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import redis
from meshc.ops.client import (
    BackpressureError,
    MeshClient,
    SubmitError,
    WaitTimeout,
    decode_entry,
    stream_backlog,
)
from meshc.runtime import keys
from ops_fixtures import Task, fresh_client, make_mesh


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = fresh_client()
    yield client
    client.close()


def _result(r: redis.Redis, trace: str, doc_id: str = "d", key: str = "t.out") -> bytes:
    """Write a terminal entry by hand, as the aggregator would."""
    fields = {"data": orjson.dumps({"doc_id": doc_id, "total": 1}), "trace": trace,
              "parent": "1-0", "agent": "agg", "attempt": "1"}  # fmt: skip
    return r.xadd(key, fields)  # type: ignore[arg-type, return-value]


def test_submit_writes_the_wire_format(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(), client=r)
    sent = client.submit({"doc_id": "a", "text": "hello"})
    assert sent.stream == sent.key == "t.tasks"
    [(eid, fields)] = r.xrange("t.tasks")
    assert eid.decode() == sent.entry_id
    assert orjson.loads(fields[b"data"]) == {"doc_id": "a", "text": "hello"}
    assert fields[b"trace"].decode() == sent.trace and len(sent.trace) == 32
    assert (fields[b"parent"], fields[b"agent"], fields[b"attempt"]) == (b"", b"ingest", b"1")
    model = client.submit(Task(doc_id="b", text="x"))
    assert model.trace != sent.trace


def test_submit_refuses_bad_input(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(), client=r)
    with pytest.raises(SubmitError, match="does not fit 't.tasks'"):
        client.submit({"doc_id": "a"})
    with pytest.raises(SubmitError, match="intake stream"):
        client.submit({"doc_id": "a", "total": 1}, stream="t.out")
    with pytest.raises(SubmitError, match="byte limit"):
        client.submit({"doc_id": "a", "text": "x" * 2_000_000})
    assert r.xlen("t.tasks") == 0


def test_submit_many_routes_partitions(r: redis.Redis) -> None:
    mesh = make_mesh(partitions=4, partition_key="doc_id")
    client = MeshClient(mesh, client=r)
    sent = client.submit_many({"doc_id": f"d{i}", "text": ""} for i in range(40))
    assert len(sent) == 40
    for i, s in enumerate(sent):
        assert s.key == keys.stream_key("t.tasks", "t", keys.partition_of(f"d{i}", 4), 4)
    assert sum(r.xlen(keys.stream_key("t.tasks", "t", p, 4)) for p in range(4)) == 40


def test_backpressure_refuses_over_the_bound(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(max_backlog=5), client=r)
    client.submit_many([{"doc_id": str(i), "text": ""} for i in range(5)])
    with pytest.raises(BackpressureError, match=r"has 5 entries .* max_backlog=5") as err:
        client.submit({"doc_id": "x", "text": ""})
    assert (err.value.backlog, err.value.bound) == (5, 5)
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w1", {"t.tasks": ">"}, count=3)
    assert stream_backlog(r, "t.tasks") == 5  # delivered but pending still counts
    for eid, _ in r.xrange("t.tasks", count=3):
        r.xack("t.tasks", "work", eid)
    assert stream_backlog(r, "t.tasks") == 2
    client.submit_many([{"doc_id": "y", "text": ""}] * 3)
    with pytest.raises(BackpressureError):
        client.submit({"doc_id": "z", "text": ""})


def test_backlog_counts_when_lag_is_unknown(r: redis.Redis) -> None:
    """After an XDEL the server reports lag as nil; meshc then counts by hand."""
    ids = [r.xadd("s", {"data": b"{}"}) for _ in range(6)]
    r.xgroup_create("s", "g", id="0")
    r.xreadgroup("g", "c", {"s": ">"}, count=2)
    r.xdel("s", ids[4])
    assert r.xinfo_groups("s")[0]["lag"] is None
    assert stream_backlog(r, "s") == 3 + 2


def test_wait_round_trip(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(), client=r)
    sent = client.submit({"doc_id": "a", "text": ""})
    _result(r, "other")
    timer = threading.Timer(0.2, _result, (r, sent.trace, "a"))
    timer.start()
    result = client.wait(sent, timeout=5)
    assert result.trace == sent.trace and result.data == {"doc_id": "a", "total": 1}
    assert (result.stream, result.entry["agent"], result.entry["parent"]) == ("t.out", "agg", "1-0")
    assert client.wait(sent.trace, timeout=1).entry == result.entry  # from history too


def test_wait_times_out(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(), client=r)
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match="no result for trace nope"):
        client.wait("nope", timeout=0.3)
    assert 0.25 < time.monotonic() - start < 2


def test_wait_many_scans_once(r: redis.Redis) -> None:
    mesh = make_mesh(partitions=3)
    client = MeshClient(mesh, client=r)
    for i in range(300):
        _result(r, f"t{i}", key=keys.stream_key("t.out", "t", i % 3, 3))
    found = client.wait_many([f"t{i}" for i in range(0, 300, 7)] + ["missing"], timeout=0.3)
    assert set(found) == {f"t{i}" for i in range(0, 300, 7)}
    assert found["t7"].key == keys.stream_key("t.out", "t", 1, 3)


def test_outside_producer_entry_takes_trace_from_id(r: redis.Redis) -> None:
    eid = r.xadd("t.out", {"data": b'{"doc_id": "o", "total": 2}'})
    client = MeshClient(make_mesh(), client=r)
    assert client.wait(eid.decode(), timeout=1).data == {"doc_id": "o", "total": 2}
    entry = decode_entry(eid, {b"data": b"not json"})
    assert entry == {"id": eid.decode(), "trace": eid.decode(), "parent": "", "agent": "",
                     "attempt": 1, "data": None}  # fmt: skip


def test_tail_history_and_follow(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(), client=r)
    sent = client.submit_many([{"doc_id": str(i), "text": ""} for i in range(3)])
    history = list(client.tail("t.tasks"))
    assert [e["trace"] for e in history] == [s.trace for s in sent]
    assert list(client.tail("t.tasks", from_id=sent[1].entry_id))[0]["id"] == sent[2].entry_id
    assert list(client.tail("t.tasks", from_id="$")) == []
    follow = client.tail("t.tasks", from_id="$", follow=True)
    threading.Timer(0.1, client.submit, ({"doc_id": "late", "text": ""},)).start()
    assert next(follow)["data"] == {"doc_id": "late", "text": ""}
    with pytest.raises(SubmitError, match="unknown stream"):
        list(client.tail("nope"))


def test_tail_without_follow_stops_at_the_snapshot(r: redis.Redis) -> None:
    client = MeshClient(make_mesh(partitions=2), client=r)
    sent = client.submit_many([{"doc_id": str(i), "text": ""} for i in range(10)])
    entries = client.tail("t.tasks")
    first = next(entries)
    client.submit_many([{"doc_id": "later", "text": ""}] * 5)
    seen = [first, *entries]
    assert sorted(e["trace"] for e in seen) == sorted(s.trace for s in sent)
