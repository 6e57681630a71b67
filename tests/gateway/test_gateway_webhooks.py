"""Webhooks: each result once, signed, retried with backoff, kept across restarts."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson
import redis
from gateway_kit import AUTH, SECRET, TASK, Receiver, Start, receiving, tokens, wait_until
from meshc.gateway import runner, signing
from meshc.gateway.config import GatewayConfig, Webhooks
from meshc.gateway.delivery import GROUP, failed_key
from meshc.ops.client import MeshClient
from meshc.runtime.spec import MeshSpec

Mesh = tuple[MeshSpec, str]
LINE = {"id": "a", "text": "b"}


def hooks(receiver: Receiver, **kw: object) -> Webhooks:
    prefix = receiver.url.rsplit("/", 1)[0] + "/"
    return Webhooks(SECRET, allow=(prefix,), backoff=0.2, **kw)  # type: ignore[arg-type]


def fails_first(tries: int) -> int:
    return 500 if tries == 1 else 200


def test_each_result_once_signed_even_after_a_failure(review: Mesh, start_gateway: Start) -> None:
    spec, url = review
    with receiving(Receiver(answer=fails_first)) as rx:
        base = start_gateway(spec, url, webhooks=hooks(rx))
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
            tasks = [{**TASK, "chunk_id": n} for n in range(3)]
            hook = {"webhook": rx.url}
            sent = [http.post("/tasks/doc.review.tasks", params=hook, json=t) for t in tasks]
            traces = [s.json()["trace"] for s in sent]
            wait_until(lambda: len(rx.accepted()) >= 3, what="three deliveries")
            results = [http.get(f"/tasks/{t}").json()["results"][0] for t in traces]
        time.sleep(1.0)  # retries run every 0.2 s: a second delivery would show by now
    accepted = rx.accepted()
    assert len(accepted) == 3 and len({c.delivery for c in accepted}) == 3
    assert all(c.signed() for c in accepted)
    assert not any(c.signed(b"another-secret-0123456789") for c in accepted)
    bodies = sorted((orjson.loads(c.body) for c in accepted), key=lambda b: b["data"]["chunk_id"])
    assert [b["trace"] for b in bodies] == traces
    assert [{k: b[k] for k in ("stream", "id", "data")} for b in bodies] == results
    for call in accepted:
        assert rx.tries(call.delivery) == 2  # refused once, then accepted
        assert call.headers[signing.ATTEMPT.lower()] == "2"
    with redis.Redis.from_url(url) as r:
        assert r.xpending("doc.review.summary", GROUP)["pending"] == 0


def gateway(spec: MeshSpec, url: str, rx: Receiver) -> runner.Running:
    """A gateway named ``gw-a`` pushing every result of the mesh to ``rx``."""
    config = GatewayConfig(spec, url, tokens(), webhooks=hooks(rx, url=rx.url))
    return runner.running(config, consumer="gw-a")


def test_a_restart_neither_loses_nor_repeats_a_delivery(idle: Mesh) -> None:
    spec, url = idle
    down = {"on": True}
    rx = Receiver(answer=lambda n: 503 if down["on"] else 200)
    with receiving(rx), gateway(spec, url, rx) as where:
        with httpx.Client(base_url=where.url, headers=AUTH) as http:
            trace = http.post("/tasks/i.in", json=LINE).json()["trace"]
        answer(spec, url, trace)
        wait_until(lambda: rx.tries(f"i.out/{first_id(url)}") >= 1, what="a refused try")
    # no gateway runs; a result arrives meanwhile; the receiver recovers (on a new port)
    with receiving(rx) as rx, MeshClient(spec, url) as mc:
        late = mc.submit(LINE).trace
        answer(spec, url, late)
        down["on"] = False
        rx.calls.clear()
        with gateway(spec, url, rx):
            wait_until(lambda: len(rx.accepted()) >= 2, what="both results delivered")
            time.sleep(1.0)
        delivered = sorted(orjson.loads(c.body)["trace"] for c in rx.accepted())
    assert delivered == sorted([trace, late])
    assert all(c.signed() for c in rx.accepted())


def test_a_delivery_that_keeps_failing_is_set_aside(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with receiving(Receiver(answer=lambda n: 500)) as rx:
        base = start_gateway(spec, url, webhooks=hooks(rx, attempts=3))
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
            trace = http.post("/tasks/i.in", params={"webhook": rx.url}, json=LINE).json()["trace"]
        answer(spec, url, trace)
        with redis.Redis.from_url(url) as r:
            wait_until(lambda: r.xlen(failed_key("idle")) == 1, what="the delivery set aside")
            (entry,) = r.xrange(failed_key("idle"))
            assert entry[1][b"trace"] == trace.encode() and entry[1][b"attempts"] == b"3"
            assert r.xpending("i.out", GROUP)["pending"] == 0
        assert len(rx.calls) == 3


def test_per_task_webhooks_only_under_allowed_prefixes(idle: Mesh, start_gateway: Start) -> None:
    spec, url = idle
    with receiving(Receiver()) as rx:
        base = start_gateway(spec, url, webhooks=hooks(rx))
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
            for bad in ("http://127.0.0.2:1/elsewhere", "file:///etc/passwd", "ftp://x/"):
                refused = http.post("/tasks/i.in", params={"webhook": bad}, json=LINE)
                assert refused.status_code == 400, bad
    with httpx.Client(base_url=start_gateway(spec, url), headers=AUTH, timeout=60) as http:
        off = http.post("/tasks/i.in", params={"webhook": rx.url}, json=LINE)
        assert off.status_code == 400 and "--webhook-allow" in off.json()["error"]


def test_signatures_cover_the_body_and_the_time() -> None:
    body = b'{"a": 1}'
    sig = signing.sign(SECRET, 1_000, body)
    assert sig == "sha256=" + hmac.new(SECRET, b"1000." + body, hashlib.sha256).hexdigest()
    assert signing.verify(SECRET, "1000", sig, body, now=1_100)
    assert not signing.verify(SECRET, "1000", sig, b'{"a": 2}', now=1_100)  # body changed
    assert not signing.verify(SECRET, "1001", sig, body, now=1_100)  # time changed
    assert not signing.verify(SECRET, "1000", sig, body, now=1_000 + 301)  # a replay, later
    assert not signing.verify(b"another-secret-0123456789", "1000", sig, body, now=1_100)
    assert not signing.verify(SECRET, "soon", sig, body)


def answer(spec: MeshSpec, url: str, trace: str) -> None:
    """Play the echo agent of the idle mesh: write the task's result."""
    with redis.Redis.from_url(url) as r:
        r.xadd("i.out", {"data": orjson.dumps(LINE), "trace": trace, "agent": "echo"})


def first_id(url: str) -> str:
    with redis.Redis.from_url(url) as r:
        return r.xrange("i.out", count=1)[0][0].decode()


def test_a_result_read_before_a_crash_is_recorded_on_restart(idle: Mesh) -> None:
    spec, url = idle
    config = GatewayConfig(spec, url, tokens())  # no webhooks: nothing retries on a timer
    with runner.running(config, consumer="gw-b") as where:
        trace = httpx.post(f"{where.url}/tasks/i.in", json=LINE, headers=AUTH).json()["trace"]
    answer(spec, url, trace)
    with redis.Redis.from_url(url) as r:  # the crash: read by gw-b, neither recorded nor acked
        assert r.xreadgroup(GROUP, "gw-b", {"i.out": ">"})
        with runner.running(config, consumer="gw-b") as where:
            wait_until(lambda: r.xpending("i.out", GROUP)["pending"] == 0, what="acked")
            done = httpx.get(f"{where.url}/tasks/{trace}", headers=AUTH)
    assert done.status_code == 200 and done.json()["results"][0]["data"] == LINE
