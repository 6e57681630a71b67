"""``GET /tasks/{trace}/events``: a task's hops as server-sent events, in hop order."""

from __future__ import annotations

from typing import Any

import httpx
import redis
from gateway_kit import AUTH, TASK, Start, sse_events
from meshc.gateway.config import Limits
from meshc.runtime.spec import MeshSpec

Mesh = tuple[MeshSpec, str]
LENSES = ["clarity", "grammar", "structure", "tone"]


def follow(http: httpx.Client, trace: str) -> list[tuple[str, dict[str, Any]]]:
    with http.stream("GET", f"/tasks/{trace}/events") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(answer.iter_lines()))


def check_review_path(events: list[tuple[str, dict[str, Any]]], entry_id: str) -> None:
    kinds = [kind for kind, _ in events]
    assert kinds == ["hop"] * 9 + ["result"], kinds
    hops = [data for _, data in events]
    intake, fanned, lensed, result = hops[0], hops[1:5], hops[5:9], hops[9]
    assert (intake["stream"], intake["agent"], intake["id"], intake["parent"]) == (
        "doc.review.tasks", "ingestion", entry_id, "",
    )  # fmt: skip
    assert sorted(h["stream"] for h in fanned) == [f"doc.review.{x}" for x in LENSES]
    assert {h["agent"] for h in fanned} == {"coordinator"}
    assert {h["parent"] for h in fanned} == {entry_id}
    assert sorted(h["agent"] for h in lensed) == LENSES
    assert sorted(h["stream"] for h in lensed) == [f"doc.suggestions.{x}" for x in LENSES]
    by_stream = {h["stream"]: h["id"] for h in fanned}
    assert all(h["parent"] == by_stream[f"doc.review.{h['agent']}"] for h in lensed)
    assert result["agent"] == "aggregator" and result["stream"] == "doc.review.summary"
    assert result["parent"] in {h["id"] for h in lensed}  # the last partial of the join
    assert result["data"]["doc_id"] == TASK["doc_id"]
    seen: set[str] = {""}
    for hop in hops:  # every hop after the hop it came from
        assert hop["parent"] in seen, hop
        seen.add(hop["id"])


def test_events_follow_a_task_live_in_hop_order(review: Mesh, start_gateway: Start) -> None:
    spec, url = review
    with httpx.Client(base_url=start_gateway(spec, url), headers=AUTH, timeout=60) as http:
        sent = http.post("/tasks/doc.review.tasks", json=TASK).json()
        events = follow(http, sent["trace"])  # opened while the task runs
        check_review_path(events, sent["id"])
        assert follow(http, sent["trace"]) == events  # and replayed once it is done


def test_event_streams_over_the_bound_are_503(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    base = start_gateway(spec, url, limits=Limits(max_streams=1, max_wait=30))
    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
        trace = http.post("/tasks/i.in", json={"id": "a", "text": "b"}).json()["trace"]
        with http.stream("GET", f"/tasks/{trace}/events") as held:
            lines = held.iter_lines()  # kept: a dropped iterator closes the stream
            assert next(lines).startswith(":")  # the stream is open and counted
            assert http.get("/healthz").json()["held"]["event_streams"] == 1
            busy = http.get(f"/tasks/{trace}/events")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        with http.stream("GET", f"/tasks/{trace}/events") as again:  # the slot came back
            assert again.status_code == 200


def test_an_event_stream_ends_at_the_wait_bound(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle  # no worker: the task never finishes
    base = start_gateway(spec, url, limits=Limits(max_wait=1.5))
    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
        sent = http.post("/tasks/i.in", json={"id": "a", "text": "b"}).json()
        events = follow(http, sent["trace"])
    assert [kind for kind, _ in events] == ["hop", "timeout"]
    assert events[0][1]["id"] == sent["id"] and events[0][1]["agent"] == "feed"


def test_dead_letters_are_events_too(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with httpx.Client(base_url=start_gateway(spec, url), headers=AUTH, timeout=60) as http:
        sent = http.post("/tasks/i.in", json={"id": "a", "text": "b"}).json()
        header = {"trace": sent["trace"], "agent": "echo"}
        with redis.Redis.from_url(url) as r:  # play the echo agent: one dead letter, one result
            dead = {"data": b"{}", "error": "ValueError: no", "source_id": sent["id"]}
            r.xadd("idle.dlq.echo", {**dead, **header})
            r.xadd("i.out", {"data": b'{"id": "a", "text": "b"}', "parent": sent["id"], **header})
        events = follow(http, sent["trace"])
    assert [kind for kind, _ in events] == ["hop", "dead_letter", "result"]
    assert events[1][1]["error"] == "ValueError: no" and events[1][1]["stream"] == "idle.dlq.echo"
    assert events[2][1]["data"] == {"id": "a", "text": "b"}
