"""status, dead letters and trimming against hand-built scenarios on a real server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import orjson
import pytest
import redis
from meshc.commands.dlq import format_letter
from meshc.ops import admin
from meshc.ops.admin import AdminError
from meshc.ops.client import MeshClient
from meshc.runtime import keys
from meshc.runtime.scripts import RETRY_CONSUMER
from ops_fixtures import fresh_client, make_mesh, shared_url


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = fresh_client()
    yield client
    client.close()


def _fill(r: redis.Redis, key: str, n: int) -> list[bytes]:
    return [r.xadd(key, {"data": orjson.dumps({"doc_id": str(i), "text": ""})}) for i in range(n)]


def _dead_letter(r: redis.Redis, source_id: bytes, key: str = "t.dlq.work", **extra: str) -> bytes:
    fields = {"data": orjson.dumps({"doc_id": "bad", "text": ""}), "error": "boom",
              "source_stream": "t.tasks", "source_id": source_id, "deliveries": "5",
              "trace": "tr", "agent": "work", **extra}  # fmt: skip
    return r.xadd(key, fields)  # type: ignore[arg-type, return-value]


def test_status_numbers(r: redis.Redis) -> None:
    mesh = make_mesh()
    _fill(r, "t.tasks", 10)
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w-1", {"t.tasks": ">"}, count=4)
    r.xreadgroup("work", "w-2", {"t.tasks": ">"}, count=2)
    first = r.xrange("t.tasks", count=1)[0][0]
    r.xack("t.tasks", "work", first)
    _dead_letter(r, first)
    r.set(keys.private_key("t", "agg", "late"), "3")
    report = admin.status(mesh, r)
    work = report["streams"]["t.tasks"]["groups"]["work"]
    assert report["streams"]["t.tasks"]["length"] == 10
    assert (work["exists"], work["lag"], work["pending"]) == (True, 4, 5)
    assert work["last_delivered"]["t.tasks"] == r.xrange("t.tasks")[5][0].decode()
    consumers = {c["name"]: c["pending"] for c in work["consumers"]}
    assert consumers == {"w-1": 3, "w-2": 2}
    parts = report["streams"]["t.parts"]["groups"]["agg"]
    assert (parts["exists"], parts["lag"]) == (False, 0)
    assert report["agents"]["work"] == {
        "role": "specialist",
        "dead_letters": 1,
        "stuck_exits": 0,
        "last_stuck": None,
    }
    assert report["agents"]["agg"]["late_partials"] == 3
    assert json.loads(json.dumps(report)) == report  # JSON-friendly
    text = admin.format_status(report)
    assert "w-1 (pending 3" in text and "agg (no group yet)" in text
    assert "LATE PARTIALS" in text


def test_status_counts_entries_waiting_for_a_retry_apart(r: redis.Redis) -> None:
    """Failed calls wait with the retry consumer: counted as `retrying`, not listed as
    a consumer (it is no worker)."""
    mesh = make_mesh()
    for n in range(3):
        r.xadd("t.tasks", {"data": f'{{"n": {n}}}'})
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w-1", {"t.tasks": ">"}, count=3)
    failed = r.xrange("t.tasks", count=1)[0][0]
    r.xclaim("t.tasks", "work", RETRY_CONSUMER, 0, [failed], justid=True)
    work = admin.status(mesh, r)["streams"]["t.tasks"]["groups"]["work"]
    assert (work["pending"], work["retrying"]) == (3, 1)
    assert [c["name"] for c in work["consumers"]] == ["w-1"]
    assert "3 (1 to retry)" in admin.format_status(admin.status(mesh, r))


def test_status_sums_partitions(r: redis.Redis) -> None:
    mesh = make_mesh(partitions=2)
    client = MeshClient(mesh, client=r)
    client.submit_many([{"doc_id": str(i), "text": ""} for i in range(20)])
    k0, k1 = (keys.stream_key("t.tasks", "t", p, 2) for p in range(2))
    for key in (k0, k1):
        r.xgroup_create(key, "work", id="0")
        r.xreadgroup("work", "w", {key: ">"}, count=1)
    work = admin.status(mesh, r)["streams"]["t.tasks"]["groups"]["work"]
    assert (work["lag"], work["pending"]) == (18, 2)
    assert set(work["last_delivered"]) == {k0, k1}
    assert work["consumers"][0]["pending"] == 2


def test_dlq_list_and_redrive(r: redis.Redis) -> None:
    mesh = make_mesh()
    client = MeshClient(mesh, client=r)
    sent = client.submit({"doc_id": "bad", "text": ""})
    r.xgroup_create("t.tasks", "work", id="0")
    r.xreadgroup("work", "w", {"t.tasks": ">"})
    r.xack("t.tasks", "work", sent.entry_id)  # the worker's script acks as it dead-letters
    d1 = _dead_letter(r, sent.entry_id.encode(), trace=sent.trace)
    d2 = _dead_letter(r, b"1-0")  # original long gone
    letters = admin.dlq_list(mesh, "work", shared_url(), 10)  # by URL
    assert [x["id"] for x in letters] == [d1.decode(), d2.decode()]
    assert letters[0]["error"] == "boom" and letters[0]["deliveries"] == 5
    assert letters[0]["data"] == {"doc_id": "bad", "text": ""}
    assert admin.dlq_redrive(mesh, "work", r, ids=[d1.decode()]) == 1
    assert r.xlen("t.dlq.work") == 1
    eid, fields = r.xrange("t.tasks")[-1]
    assert fields[b"trace"].decode() == sent.trace and fields[b"agent"] == b"ingest"
    assert r.xreadgroup("work", "w", {"t.tasks": ">"})[0][1][0][0] == eid  # delivered again
    assert admin.dlq_redrive(mesh, "work", r) == 1
    rebuilt = r.xrange("t.tasks")[-1][1]
    assert (rebuilt[b"trace"], rebuilt[b"agent"], rebuilt[b"parent"]) == (b"tr", b"ingest", b"")
    assert r.xlen("t.dlq.work") == 0
    assert admin.dlq_redrive(mesh, "work", r) == 0


def test_dlq_list_shows_a_payload_that_is_not_json_as_it_was_stored(r: redis.Redis) -> None:
    mesh = make_mesh()
    cut, binary = b'{"doc_id": "a", "text": ', b"\xff\xfe\x00\x01"
    stored = [cut, b"caf\xc3\xa9 \x1b[31m", binary, b"null", b'"x"']
    for data in stored:
        _dead_letter(r, b"1-0", data=data)  # type: ignore[arg-type]
    letters = admin.dlq_list(mesh, "work", r)
    assert [x["raw_data"] for x in letters] == [
        {"encoding": "utf-8", "value": '{"doc_id": "a", "text": '},
        {"encoding": "utf-8", "value": "café \x1b[31m"},
        {"encoding": "base64", "value": base64.b64encode(b"\xff\xfe\x00\x01").decode()},
        None,  # JSON null, as sent
        None,
    ]
    assert [x["data"] for x in letters] == [None, None, None, None, "x"]
    shown = [format_letter(x).splitlines()[-1] for x in letters]
    marked = "  data:  (not JSON, the text as stored) "
    assert shown[0] == marked + '"{\\"doc_id\\": \\"a\\", \\"text\\": "'
    assert shown[1] == marked + '"café \\u001b[31m"'  # no raw escape reaches the terminal
    assert shown[2] == "  data:  (not JSON nor UTF-8, the bytes in base64) //4AAQ=="
    assert shown[3:] == ["  data:  null", '  data:  "x"']
    assert json.loads(json.dumps(letters)) == letters  # the --format json output


def test_dlq_refuses_unknown_things(r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    mesh = make_mesh()
    with pytest.raises(AdminError, match="no agent 'nope'"):
        admin.dlq_list(mesh, "nope", r)
    with pytest.raises(AdminError, match="no dead letter"):
        admin.dlq_redrive(mesh, "work", r, ids=["5-5"])
    foreign = _dead_letter(r, b"1-0", source_stream="t.out")
    join = _dead_letter(r, b"1-0", source_stream="")  # a failed join has no source
    empty = _dead_letter(r, b"1-0", data="")
    good = _dead_letter(r, b"1-0", source_parent="0-1", source_agent="ingest")
    with pytest.raises(AdminError, match="not an input of 'work'"):
        admin.dlq_redrive(mesh, "work", r, ids=[foreign.decode(), good.decode()])
    assert r.xlen("t.tasks") == 0  # checked before anything moved
    assert admin.dlq_redrive(mesh, "work", r) == 1  # the good one; the others stay
    assert "skipped 3 dead letters of work" in caplog.text
    assert "failed join" in caplog.text and "no payload" in caplog.text
    left = [x["id"] for x in admin.dlq_list(mesh, "work", r)]
    assert left == [foreign.decode(), join.decode(), empty.decode()]
    fields = r.xrange("t.tasks")[0][1]
    assert (fields[b"parent"], fields[b"agent"], fields[b"trace"]) == (b"0-1", b"ingest", b"tr")
    assert r.xlen("t.out") == 0


def test_dlq_partitioned_redrive_goes_to_its_partition(r: redis.Redis) -> None:
    mesh = make_mesh(partitions=2)
    dlq1 = keys.stream_key("t.dlq.work", "t", 1, 2)
    _dead_letter(r, b"1-0", key=dlq1)  # bare stream name: partition comes from the DLQ key
    assert admin.dlq_list(mesh, "work", r)[0]["key"] == dlq1
    assert admin.dlq_redrive(mesh, "work", r) == 1
    assert r.xlen(keys.stream_key("t.tasks", "t", 1, 2)) == 1
