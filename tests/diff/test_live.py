"""The findings that depend on the server, settled by a real one (both servers of
tests/conftest.py): each condition holds when the server holds what it names, and
is clear when it does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from meshc.api import analyze_file, analyze_text
from meshc.core import CoreMesh
from meshc.diff import diff_meshes, finish
from meshc.diff.findings import Finding, Report
from meshc.ops.diff_facts import Facts, settle
from meshc.runtime import keys

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def r(valkey_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_url)
    yield client
    client.close()


def _pair(case: str) -> tuple[CoreMesh, CoreMesh]:
    old, new = (analyze_file(str(CORPUS / case / f"{v}.yaml")).core for v in ("old", "new"))
    assert old is not None and new is not None
    return old, new


def _settled(old: CoreMesh, new: CoreMesh, r: redis.Redis) -> Report:
    return finish(settle(diff_meshes(old, new), Facts(r, old)), old, new)


def _one(report: Report, rule: str) -> Finding:
    [found] = [f for f in report.findings if f.rule == rule]
    return found


def _add(r: redis.Redis, key: str, n: int) -> list[bytes]:
    return [r.xadd(key, {"data": b'{"id": "x", "qty": 1, "note": null}'}) for _ in range(n)]


def test_type_change_on_drained_streams_needs_only_restarts(r: redis.Redis) -> None:
    old, new = _pair("required_field_added")
    for key in ("orders.in", "orders.stock"):
        ids = _add(r, key, 3)
        group = "split" if key == "orders.in" else "stock"
        r.xgroup_create(key, group, id="0")
        r.xreadgroup(group, "c", {key: ">"})
        r.xack(key, group, *ids)  # every entry handled: nothing old left to read
    r.xgroup_create("orders.fraud", "fraud", id="0", mkstream=True)
    report = _settled(old, new, r)
    finding = _one(report, "field-added-required")
    assert (finding.held, finding.effective, report.exit_code) == (False, "restart", 0)
    assert "`orders.in` holds 3 entries, all finished" in finding.evidence


@pytest.mark.parametrize("state", ["lag", "pending", "no group yet"])
def test_type_change_breaks_while_old_entries_wait(r: redis.Redis, state: str) -> None:
    old, new = _pair("required_field_added")
    for key, group in (("orders.stock", "stock"), ("orders.fraud", "fraud")):
        r.xgroup_create(key, group, id="0", mkstream=True)
    _add(r, "orders.in", 2)
    if state != "no group yet":
        r.xgroup_create("orders.in", "split", id="0")
    if state == "pending":
        r.xreadgroup("split", "c", {"orders.in": ">"})
    report = _settled(old, new, r)
    finding = _one(report, "field-added-required")
    assert (finding.held, finding.effective, report.exit_code) == (True, "breaks", 1)
    assert "`orders.in` holds 2 entries, unfinished: split 2" in finding.evidence


def test_removed_stream_and_agent_break_only_with_unfinished_work(r: redis.Redis) -> None:
    old, new = _pair("lane_removed")
    ids = _add(r, "orders.address", 4)
    r.xgroup_create("orders.address", "address", id="0")
    r.xreadgroup("address", "c", {"orders.address": ">"}, count=1)
    report = _settled(old, new, r)
    assert _one(report, "agent-removed").effective == "breaks"
    assert [f.effective for f in report.findings if f.rule == "stream-removed"] == [
        "safe", "breaks",  # checks.address (empty), orders.address (sorted by name)
    ]  # fmt: skip
    r.xreadgroup("address", "c", {"orders.address": ">"})
    r.xack("orders.address", "address", *ids)
    report = _settled(old, new, r)
    assert _one(report, "agent-removed").effective == "restart"
    assert {f.effective for f in report.findings if f.rule == "stream-removed"} == {"safe"}


def test_removed_reader_waits_on_its_own_group_only(r: redis.Redis) -> None:
    old, new = _pair("sink_removed")
    _add(r, "orders.in", 3)
    r.xgroup_create("orders.in", "split", id="0")  # another reader, far behind: not audit's work
    r.xgroup_create("orders.in", "audit", id="$")
    assert _one(_settled(old, new, r), "agent-removed").effective == "restart"
    _add(r, "orders.in", 1)
    finding = _one(_settled(old, new, r), "agent-removed")
    assert finding.effective == "breaks"
    assert finding.evidence == ("group `audit` on `orders.in`: 1 unfinished",)


def test_open_joins_break_a_join_change(r: redis.Redis) -> None:
    old, new = _pair("join_key_changed")
    for key in ("checks.stock", "checks.fraud"):
        r.xgroup_create(key, "decide", id="0", mkstream=True)
    assert _one(_settled(old, new, r), "join-key-changed").effective == "restart"
    r.zadd(keys.private_key("shop", "decide", "join-deadlines"), {'["o-1"]': 1})
    finding = _one(_settled(old, new, r), "join-key-changed")
    assert finding.effective == "breaks" and "`decide` has 1 open join" in finding.evidence


def test_renamed_agent_breaks_when_its_stream_holds_anything(r: redis.Redis) -> None:
    old, new = _pair("agent_renamed")
    assert _one(_settled(old, new, r), "agent-renamed").effective == "restart"
    ids = _add(r, "orders.stock", 2)
    r.xgroup_create("orders.stock", "stock", id="0")
    r.xreadgroup("stock", "c", {"orders.stock": ">"})
    r.xack("orders.stock", "stock", *ids)  # all handled by `stock`: `inventory` would redo them
    assert _one(_settled(old, new, r), "agent-renamed").effective == "breaks"


def test_partitions_are_read_under_the_old_keys(r: redis.Redis) -> None:
    source = (CORPUS / "partitions_changed" / "new.yaml").read_text()
    old = analyze_text(source).core
    new = analyze_text(source.replace("partitions: 4", "partitions: 2")).core
    assert old is not None and new is not None
    report = _settled(old, new, r)
    assert _one(report, "partitions-changed").effective == "restart"
    _add(r, keys.stream_key("orders.in", "shop", 3, 4), 1)  # a reader has no group yet
    finding = _one(_settled(old, new, r), "partitions-changed")
    assert finding.effective == "breaks"
    assert "`orders.in` holds 1 entry, unfinished: split 1" in finding.evidence
    assert _settled(old, new, r).level == "breaks"
