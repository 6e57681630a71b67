"""The HTTP API: submit, results, errors, auth and limits, through a real uvicorn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from gateway_kit import AUTH, TASK, Start, wait_until
from meshc.gateway.config import Limits
from meshc.ops.client import MeshClient
from meshc.runtime.spec import MeshSpec

Mesh = tuple[MeshSpec, str]
LINE = {"id": "a", "text": "hello"}


def client(base: str, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=base, headers=AUTH if headers is None else headers, timeout=60)


def test_submit_then_wait_gives_the_mesh_result(review: Mesh, start_gateway: Start) -> None:
    spec, url = review
    with client(start_gateway(spec, url)) as http:
        sent = http.post("/tasks/doc.review.tasks", json=TASK)
        assert sent.status_code == 202, sent.text
        body = sent.json()
        assert sent.headers["location"] == f"/tasks/{body['trace']}" == body["status_url"]
        assert body["stream"] == "doc.review.tasks" and body["id"].count("-") == 1
        done = http.get(f"{body['status_url']}?wait=60")
        assert done.status_code == 200, done.text
        (result,) = done.json()["results"]
        assert result["stream"] == "doc.review.summary"
        summary = result["data"]
        assert (summary["doc_id"], summary["chunk_id"]) == ("d1", 0)
        assert sorted(summary["lenses"]) == ["clarity", "grammar", "structure", "tone"]
        assert summary["lenses"]["grammar"], "the grammar lens finds `I has`"
        again = http.get(body["status_url"])  # later, without waiting: from the record
        assert again.status_code == 200 and again.json() == done.json()


def test_the_task_went_through_meshclient_wire_format(review: Mesh, start_gateway: Start) -> None:
    spec, url = review
    with client(start_gateway(spec, url)) as http:
        body = http.post("/tasks/doc.review.tasks", json=TASK).json()
    with MeshClient(spec, url) as mc:
        entry = next(e for e in mc.tail("doc.review.tasks") if e["id"] == body["id"])
        result = mc.wait(body["trace"], timeout=60)
    assert entry["trace"] == body["trace"] and entry["agent"] == "ingestion"
    assert entry["parent"] == "" and entry["data"] == TASK
    assert result.data["doc_id"] == "d1"


def test_many_long_polls_each_get_their_own_result(review: Mesh, start_gateway: Start) -> None:
    spec, url = review
    base = start_gateway(spec, url)

    async def one(http: httpx.AsyncClient, n: int) -> dict[str, Any]:
        sent = await http.post("/tasks/doc.review.tasks", json={**TASK, "chunk_id": n})
        got = await http.get(f"/tasks/{sent.json()['trace']}", params={"wait": 60})
        assert got.status_code == 200, got.text
        data: dict[str, Any] = got.json()["results"][0]["data"]
        return data

    async def all_of_them() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=90) as http:
            return await asyncio.gather(*(one(http, n) for n in range(20)))

    results = asyncio.run(all_of_them())
    assert [r["chunk_id"] for r in results] == list(range(20))


def test_a_task_in_flight_is_202_and_an_unknown_one_404(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with client(start_gateway(spec, url, limits=Limits(max_wait=0.3))) as http:
        trace = http.post("/tasks/i.in", json=LINE).json()["trace"]
        pending = http.get(f"/tasks/{trace}")
        assert pending.status_code == 202
        assert pending.json() == {"trace": trace, "status": "pending", "results": []}
        capped = http.get(f"/tasks/{trace}?wait=3600")  # capped by max_wait: it answers
        assert capped.status_code == 202
        for path in ("/tasks/0123456789abcdef", "/tasks/0123456789abcdef/events"):
            unknown = http.get(path)
            assert unknown.status_code == 404 and "no task" in unknown.json()["error"]
        assert http.get(f"/tasks/{trace}?wait=soon").status_code == 400
        assert http.get(f"/tasks/{trace}?wait=-1").status_code == 400


def test_a_body_that_does_not_fit_is_422_with_errors(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with client(start_gateway(spec, url)) as http:
        bad = http.post("/tasks/i.in", json={"id": 7, "extra": 1})
        assert bad.status_code == 422
        problems = {tuple(d["loc"]): d["type"] for d in bad.json()["detail"]}
        assert problems == {
            ("id",): "string_type",
            ("text",): "missing",
            ("extra",): "extra_forbidden",
        }
        assert "i.in (Line)" in bad.json()["error"]
        assert http.post("/tasks/i.in", json=[1]).status_code == 422
        not_json = http.post("/tasks/i.in", content=b"{oops")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
        nowhere = http.post("/tasks/i.out", json=LINE)  # a terminal stream is no intake
        assert nowhere.status_code == 404 and "i.in" in nowhere.json()["error"]
        assert http.get("/openapi.json").status_code == 200
    with MeshClient(spec, url) as mc:
        assert list(mc.tail("i.in")) == []  # nothing was written


def test_a_token_is_needed(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    base = start_gateway(spec, url)
    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    basic = {"Authorization": AUTH["Authorization"].replace("Bearer", "Basic")}
    for headers in ({}, wrong, basic):
        with client(base, headers) as http:
            for method, path in (("POST", "/tasks/i.in"), ("GET", "/tasks/x"),
                                 ("GET", "/tasks/x/events"), ("GET", "/openapi.json")):  # fmt: skip
                refused = http.request(method, path, json=LINE)
                assert refused.status_code == 401, (headers, path)
                assert refused.headers["www-authenticate"].startswith("Bearer")
            assert http.get("/healthz").status_code == 200  # for load balancers
    with MeshClient(spec, url) as mc:
        assert list(mc.tail("i.in")) == []
    with client(base) as http:
        assert http.post("/tasks/i.in", json=LINE).status_code == 202


def test_no_auth_lets_everyone_in(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with client(start_gateway(spec, url, auth=False), headers={}) as http:
        assert http.post("/tasks/i.in", json=LINE).status_code == 202
        assert "security" not in http.get("/openapi.json").json()


def test_a_body_over_the_limit_is_413(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with client(start_gateway(spec, url, limits=Limits(max_body=100))) as http:
        big = {"id": "a", "text": "x" * 200}
        assert http.post("/tasks/i.in", json=big).status_code == 413
        assert http.post("/tasks/i.in", json={"id": "a", "text": "x" * 50}).status_code == 202

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
            yield b'{"id": "a", "text": "'
            for _ in range(10):
                yield b"x" * 20
            yield b'"}'

        streamed = http.post("/tasks/i.in", content=chunks())
        assert streamed.status_code == 413
        assert "100-byte limit" in streamed.json()["error"]


def test_a_full_intake_is_429_with_retry_after(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle  # max_backlog: 2 and no worker
    with client(start_gateway(spec, url)) as http:
        assert [http.post("/tasks/i.in", json=LINE).status_code for _ in range(2)] == [202, 202]
        full = http.post("/tasks/i.in", json=LINE)
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert "max_backlog=2" in full.json()["error"]


def test_long_polls_over_the_bound_are_503(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    base = start_gateway(spec, url, limits=Limits(max_waits=1, max_wait=30))
    with client(base) as http:
        trace = http.post("/tasks/i.in", json=LINE).json()["trace"]
    first: list[int] = []

    def hold() -> None:  # until it holds the one slot (a probe may have it for a moment)
        with client(base) as http:
            while not first or first[-1] == 503:
                first.append(http.get(f"/tasks/{trace}?wait=30").status_code)

    holder = threading.Thread(target=hold)
    holder.start()
    with client(base) as http:
        probes: list[httpx.Response] = []

        def refused() -> bool:
            probes.append(http.get(f"/tasks/{trace}?wait=0.01"))
            return probes[-1].status_code == 503

        wait_until(refused, what="a second long-poll refused")
        assert probes[-1].headers["retry-after"] == "1"
        held = http.get("/healthz").json()["held"]
        assert held == {"long_polls": 1, "event_streams": 0}
        assert http.get(f"/tasks/{trace}").status_code == 202  # a plain read is not held
        with MeshClient(spec, url) as mc:  # answer the held one: write its result
            mc.redis.xadd("i.out", {"data": orjson.dumps(LINE), "trace": trace, "agent": "echo"})
    holder.join(60)
    assert first[-1] == 200


def test_results_outlive_the_terminal_stream_and_tasks_expire(
    idle: Mesh, start_gateway: Start
) -> None:
    spec, url = idle
    with client(start_gateway(spec, url)) as http:
        trace = http.post("/tasks/i.in", json=LINE).json()["trace"]
        with MeshClient(spec, url) as mc:
            mc.redis.xadd("i.out", {"data": orjson.dumps(LINE), "trace": trace, "agent": "echo"})
            assert http.get(f"/tasks/{trace}?wait=30").status_code == 200
            key = f"idle:meshc-gateway:task:{trace}"
            wait_until(lambda: any(f.startswith(b"result:") for f in mc.redis.hkeys(key)),
                       what="the result recorded")  # fmt: skip
            mc.redis.xtrim("i.out", maxlen=0)
            ttl = mc.redis.pttl(key)
        done = http.get(f"/tasks/{trace}")
        assert done.status_code == 200 and done.json()["results"][0]["data"] == LINE
    assert 0 < ttl <= 86_400_000  # forgotten after --keep (a day by default)


def test_a_task_over_the_agents_payload_limit_is_413(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle  # the echo agent takes at most 1,048,576 bytes (the default)
    with client(start_gateway(spec, url, limits=Limits(max_body=4_000_000))) as http:
        big = http.post("/tasks/i.in", json={"id": "a", "text": "x" * 1_100_000})
        assert big.status_code == 413
        assert "1048576-byte limit of the agents reading 'i.in'" in big.json()["error"]
    with MeshClient(spec, url) as mc:
        assert list(mc.tail("i.in")) == []
