"""Trimming by retention, on both real servers: what it removes, what stops it, what it
counts, and that nothing a group has not finished is ever removed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest
import redis
from meshc.ops import admin
from meshc.ops.client import MeshClient
from meshc.runtime import keys, retention
from meshc.runtime.retention import Hold, trim, trim_report
from ops_fixtures import make_mesh


@pytest.fixture
def r(valkey_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_url)
    yield client
    client.close()


def _fill(r: redis.Redis, key: str, n: int) -> list[bytes]:
    return [r.xadd(key, {"data": orjson.dumps({"doc_id": str(i), "text": ""})}) for i in range(n)]


def _ids(r: redis.Redis, key: str) -> list[bytes]:
    return [eid for eid, _ in r.xrange(key)]


def _pending_intact(r: redis.Redis, key: str, group: str) -> None:
    pending = {p["message_id"] for p in r.xpending_range(key, group, "-", "+", 10_000)}
    present = {eid for eid, fields in r.xrange(key) if fields}
    assert pending <= present


def test_trim_stops_at_the_oldest_pending_entry_then_at_the_first_unread(r: redis.Redis) -> None:
    mesh = make_mesh(maxlen=5)
    ids = _fill(r, "t.tasks", 50)
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w", {"t.tasks": ">"}, count=30)
    r.xack("t.tasks", "work", *(eid for eid in ids[:30] if eid not in (ids[10], ids[20])))
    [report] = trim_report(mesh, r)
    assert (report.before, report.removed, report.after) == (50, 10, 40)
    assert report.held == [Hold("t.tasks", "work", "pending", ids[10].decode())]
    assert _ids(r, "t.tasks")[0] == ids[10]
    _pending_intact(r, "t.tasks", "work")
    r.xack("t.tasks", "work", ids[10], ids[20])
    [report] = trim_report(mesh, r)  # every delivered entry is finished: all of them go
    assert report.removed == 20 and _ids(r, "t.tasks")[0] == ids[30]
    assert report.held == [Hold("t.tasks", "work", "unread", ids[30].decode())]
    r.xreadgroup("work", "w", {"t.tasks": ">"})
    r.xack("t.tasks", "work", *ids[30:])
    [report] = trim_report(mesh, r)
    assert (report.removed, report.after, report.held) == (15, 5, [])
    assert _ids(r, "t.tasks") == ids[-5:]


def test_trim_waits_for_every_group_and_for_readers_without_one(r: redis.Redis) -> None:
    mesh = make_mesh(max_age=0.001)
    ids = _fill(r, "t.tasks", 10)
    time.sleep(0.01)
    [report] = trim_report(mesh, r)
    assert report.removed == 0  # the reading agent has no group yet: it will read from 0
    assert report.held == [Hold("t.tasks", "work", "no group", ids[0].decode())]
    r.xgroup_create("t.tasks", "work", id="0")
    r.xgroup_create("t.tasks", "other", id="0")  # a group the mesh does not declare
    r.xreadgroup("work", "w", {"t.tasks": ">"})
    r.xack("t.tasks", "work", *ids)
    assert trim(mesh, r) == 0  # "other" has read nothing
    r.xreadgroup("other", "o", {"t.tasks": ">"}, count=4)
    assert trim(mesh, r) == 0  # ... and holds what it read pending
    r.xack("t.tasks", "other", *ids[:4])
    [report] = trim_report(mesh, r)
    assert report.removed == 4
    assert report.held == [Hold("t.tasks", "other", "unread", ids[4].decode())]


def test_unread_entries_of_a_stopped_consumer_survive_every_trim(r: redis.Redis) -> None:
    mesh = make_mesh(maxlen=5, max_age=0.001)
    early = _fill(r, "t.tasks", 10)
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w", {"t.tasks": ">"})
    r.xack("t.tasks", "work", *early)  # then the consumer stops
    unread = _fill(r, "t.tasks", 300)
    for _ in range(5):
        time.sleep(0.005)
        trim(mesh, r)
    assert _ids(r, "t.tasks") == unread
    [held] = retention.records(r, mesh, "t.tasks")["held_by"]
    assert (held["group"], held["reason"], held["entry"]) == ("work", "unread", unread[0].decode())


def test_max_age_trims_by_the_time_in_the_entry_id(r: redis.Redis) -> None:
    mesh = make_mesh(max_age=60)
    now = retention.server_ms(r)
    old = [r.xadd("t.tasks", {"data": b"{}"}, id=f"{now - 3_600_000 + i}-0") for i in range(3)]
    edge = r.xadd("t.tasks", {"data": b"{}"}, id=f"{now - 61_000}-0")
    young = [r.xadd("t.tasks", {"data": b"{}"}, id=f"{now - 30_000 + i}-0") for i in range(3)]
    fresh = _fill(r, "t.tasks", 2)
    r.xgroup_create("t.tasks", "work", id="$")  # everything read and finished
    assert trim(mesh, r) == 4  # all written a moment ago: only the ids say how old they are
    assert _ids(r, "t.tasks") == young + fresh and edge not in _ids(r, "t.tasks") and old


def test_dry_run_reports_what_a_trim_then_does_and_removes_nothing(r: redis.Redis) -> None:
    mesh = make_mesh(maxlen=3)
    ids = _fill(r, "t.tasks", 40)
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w", {"t.tasks": ">"}, count=25)
    r.xack("t.tasks", "work", *ids[:12])
    dry = trim_report(mesh, r, dry_run=True)
    assert r.xlen("t.tasks") == 40 and r.hgetall(keys.retention_record("t", "t.tasks")) == {}
    real = trim_report(mesh, r)
    assert [t.to_json() for t in dry] == [t.to_json() for t in real]
    assert real[0].removed == 12 and r.xlen("t.tasks") == 28


def test_trim_in_chunks(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "TRIM_CHUNK", 7)
    mesh = make_mesh()
    mesh.streams["t.out"] = replace(mesh.streams["t.out"], maxlen=3)
    ids = _fill(r, "t.out", 40)
    assert trim_report(mesh, r, dry_run=True)[0].removed == 37
    assert trim(mesh, r) == 37
    assert _ids(r, "t.out") == ids[-3:]


def test_terminal_stream_by_age(r: redis.Redis) -> None:
    mesh = make_mesh()
    mesh.streams["t.out"] = replace(mesh.streams["t.out"], max_age=0.05)
    _fill(r, "t.out", 5)
    time.sleep(0.1)
    _fill(r, "t.out", 2)
    assert trim(mesh, r) == 5 and r.xlen("t.out") == 2


def test_maxlen_is_shared_by_partitions(r: redis.Redis) -> None:
    mesh = make_mesh(partitions=2, maxlen=10)
    MeshClient(mesh, client=r).submit_many([{"doc_id": str(i), "text": ""} for i in range(60)])
    for p in range(2):
        r.xgroup_create(keys.stream_key("t.tasks", "t", p, 2), "work", id="$")
    [report] = trim_report(mesh, r)
    assert [r.xlen(keys.stream_key("t.tasks", "t", p, 2)) for p in range(2)] == [5, 5]
    assert (report.before, report.removed, report.after) == (60, 50, 10)
    assert retention.records(r, mesh, "t.tasks")["removed"] == 50


def test_status_shows_what_retention_removed_and_waits_on(r: redis.Redis) -> None:
    mesh = make_mesh(maxlen=2)
    ids = _fill(r, "t.tasks", 12)
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w", {"t.tasks": ">"}, count=6)
    r.xack("t.tasks", "work", *ids[:6])
    trim(mesh, r)
    r.xreadgroup("work", "w", {"t.tasks": ">"}, count=2)
    trim(mesh, r)  # keeps the two pending entries
    report = admin.status(mesh, r)
    kept = report["streams"]["t.tasks"]["retention"]
    assert kept["removed"] == 6 and kept["policy"] == "maxlen 2"
    assert kept["held_by"] == [
        {"key": "t.tasks", "group": "work", "reason": "pending", "entry": ids[6].decode()}
    ]
    assert "retention" not in report["streams"]["t.parts"]
    text = admin.format_status(json.loads(json.dumps(report)))
    assert f"group work: oldest pending entry {ids[6].decode()} (on t.tasks)" in text
    assert "RETAINED STREAM" in text and "maxlen 2" in text
