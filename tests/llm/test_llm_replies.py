"""The ``llm`` handler against the fake server: good replies, repairs, dead letters,
retries on 5xx, 429 and timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fake_server import FakeLLM
from llm_kit import data, llm_mesh, worker
from meshc.ops import admin
from meshc.runtime.llm import call as llm_call
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Retries wait milliseconds, not seconds (the policy is the same)."""
    monkeypatch.setattr(llm_call, "DEFAULT_BACKOFF", llm_call.Backoff(base=0.01, cap=0.05))
    yield


def test_good_reply_is_parsed_into_the_output_type_with_accounting(
    valkey_url: str, fake_llm: FakeLLM
) -> None:
    mesh = llm_mesh(fake_llm.url, temperature=0.2, max_tokens=64)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        eid = await add(r, "q.in", {"n": 7, "text": "hello"})
        async with running(worker(mesh, valkey_url)):
            await until(has(r, "q.out", 1))
        [(_, out)] = await entries(r, "q.out")
        assert data(out) == {"n": 7, "text": "HELLO"}
        assert out[b"parent"] == eid and out[b"agent"] == b"ask" and out[b"attempt"] == b"1"
        [seen] = fake_llm.requests
        assert out[b"llm_calls"] == b"1" and out[b"llm_cached"] == b"0"
        prompt, completion = int(out[b"llm_prompt_tokens"]), int(out[b"llm_completion_tokens"])
        assert prompt > 0 and completion > 0
        assert int(out[b"llm_tokens"]) == prompt + completion and int(out[b"llm_ms"]) >= 0
        assert out[b"llm_model"] == b"fake-model"
        await r.aclose()

    asyncio.run(scenario())
    body = fake_llm.requests[0].body
    assert fake_llm.requests[0].path == "/v1/chat/completions"
    assert body["model"] == "fake-model" and body["temperature"] == 0.2
    assert body["max_tokens"] == 64
    assert body["messages"][-1] == {
        "role": "user",
        "content": 'Answer exactly {"n": 7, "text": "HELLO"}\n',
    }
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert schema["name"] == "Answer" and schema["strict"] is True
    assert schema["schema"]["required"] == ["n", "text"]
    totals = admin.status(mesh, valkey_url)["agents"]["ask"]["llm"]
    assert totals["calls"] == 1 and totals["errors"] == 0 and totals["cache_hits"] == 0
    assert totals["prompt_tokens"] > 0 and totals["completion_tokens"] > 0
    assert "LLM AGENT" in admin.format_status(admin.status(mesh, valkey_url))


def test_without_structured_output_the_schema_goes_in_the_prompt(
    valkey_url: str, fake_llm: FakeLLM
) -> None:
    mesh = llm_mesh(fake_llm.url, structured_output=False)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "q.in", {"n": 1, "text": "a"})
        async with running(worker(mesh, valkey_url)):
            await until(has(r, "q.out", 1))
        await r.aclose()

    asyncio.run(scenario())
    body = fake_llm.requests[0].body
    assert "response_format" not in body
    assert '"required":["n","text"]' in body["messages"][0]["content"]


def test_a_malformed_reply_is_repaired_once(valkey_url: str, fake_llm: FakeLLM) -> None:
    fake_llm.then("malformed")
    mesh = llm_mesh(fake_llm.url)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "q.in", {"n": 3, "text": "fix me"})
        async with running(worker(mesh, valkey_url)):
            await until(has(r, "q.out", 1))
        [(_, out)] = await entries(r, "q.out")
        assert data(out) == {"n": 3, "text": "FIX ME"}
        assert out[b"llm_calls"] == b"2"
        await r.aclose()

    asyncio.run(scenario())
    first, second = fake_llm.requests
    repair = second.body["messages"]
    assert repair[:2] == first.body["messages"]
    assert repair[2] == {"role": "assistant", "content": '{"n": 1, "text": "unterminated'}
    assert "not valid JSON" in repair[3]["content"] and '"required"' in repair[3]["content"]
    totals = admin.status(llm_mesh(fake_llm.url), valkey_url)["agents"]["ask"]["llm"]
    assert totals["invalid_replies"] == 1 and totals["calls"] == 2


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        (("malformed", "malformed"), "not valid JSON"),
        (("wrong_type", "wrong_type"), "does not fit Answer: n: Field required"),
    ],
)
def test_an_invalid_reply_after_the_repair_is_dead_lettered_with_the_raw_reply(
    valkey_url: str, fake_llm: FakeLLM, modes: tuple[str, str], expected: str
) -> None:
    fake_llm.then(*modes)
    mesh = llm_mesh(fake_llm.url)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        eid = await add(r, "q.in", {"n": 1, "text": "x"})
        await add(r, "q.in", {"n": 2, "text": "next"})
        w = worker(mesh, valkey_url)
        async with running(w):
            await until(has(r, "m.dlq.ask", 1))
            await until(has(r, "q.out", 1))
        [(_, letter)] = await entries(r, "m.dlq.ask")
        error = letter[b"error"].decode()
        assert letter[b"source_id"] == eid and letter[b"deliveries"] == b"1"
        assert error.startswith("PermanentError: ") and expected in error
        assert "(still, after one repair). Raw replies: 1: " in error and "; 2: " in error
        raw = "unterminated" if modes[0] == "malformed" else "unexpected"
        assert raw in error
        assert (await r.xpending("q.in", "ask"))["pending"] == 0
        [(_, out)] = await entries(r, "q.out")  # the lane kept flowing
        assert data(out) == {"n": 2, "text": "NEXT"}
        await r.aclose()

    asyncio.run(scenario())
    assert len(fake_llm.requests) == 3  # two for the bad one (first + repair), one for the next


def test_server_errors_past_retries_leave_the_message_pending_then_dead_letter_it(
    valkey_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "500"
    mesh = llm_mesh(fake_llm.url, retries=1, policy={"max_deliveries": 2})

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "q.in", {"n": 1, "text": "x"})
        w = worker(mesh, valkey_url)
        async with running(w):
            await until(lambda: _requests_at_least(fake_llm, 2))
            assert (await r.xpending("q.in", "ask"))["pending"] == 1  # retried later
            assert await r.xlen("m.dlq.ask") == 0
            await until(has(r, "m.dlq.ask", 1))
        [(_, letter)] = await entries(r, "m.dlq.ask")
        error = letter[b"error"].decode()
        assert error.startswith("ModelUnavailable: model server failed 2 times")
        assert "HTTP 500" in error and letter[b"deliveries"] == b"2"
        assert await r.xlen("q.out") == 0
        await r.aclose()

    asyncio.run(scenario())
    assert len(fake_llm.requests) == 4  # (1 + 1 retry) x 2 deliveries
    totals = admin.status(mesh, valkey_url)["agents"]["ask"]["llm"]
    assert totals["calls"] == 4 and totals["errors"] == 4


async def _requests_at_least(fake: FakeLLM, n: int) -> bool:
    return len(fake.requests) >= n


def test_429_waits_for_retry_after(valkey_url: str, fake_llm: FakeLLM) -> None:
    fake_llm.then("429")
    fake_llm.retry_after = "0.6"
    mesh = llm_mesh(fake_llm.url)

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "q.in", {"n": 1, "text": "x"})
        async with running(worker(mesh, valkey_url)):
            await until(has(r, "q.out", 1))
        await r.aclose()

    asyncio.run(scenario())
    first, second = fake_llm.times()
    assert second - first >= 0.6  # Retry-After, not the (millisecond) backoff


def test_a_slow_reply_times_out_and_is_retried(valkey_url: str, fake_llm: FakeLLM) -> None:
    fake_llm.then("slow")
    fake_llm.slow_seconds = 1.0
    mesh = llm_mesh(fake_llm.url, request_timeout="200ms")

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "q.in", {"n": 1, "text": "x"})
        async with running(worker(mesh, valkey_url, block_ms=20)):
            await until(has(r, "q.out", 1))
        await r.aclose()

    asyncio.run(scenario())
    first, second = fake_llm.times()
    assert 0.2 <= second - first < 1.0  # gave up at the timeout, did not wait the reply out
    totals = admin.status(mesh, valkey_url)["agents"]["ask"]["llm"]
    assert totals["errors"] == 1 and totals["calls"] == 2
