"""An LLM agent runs as its own ACL user: its bucket, reply cache and counters are
private keys its rules allow, and the operator user reads its totals for ``status``."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fake_server import FakeLLM
from llm_kit import data
from meshc.codegen.build import Built
from meshc.ops import admin
from meshc.ops.acl import apply_users, load_passwords, load_scripts, with_credentials
from meshc.runtime.builtins import BUILTINS
from meshc.runtime.llm import call as llm_call
from meshc.runtime.llm.settings import demo_overrides
from meshc.runtime.worker import Worker
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until


@pytest.fixture()
def users(valkey_url: str, review_llm: Built, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The compiled rules applied; agent name (or "operator") -> URL with its credentials."""
    acl: Any = importlib.import_module(f"{review_llm.package}.acl")
    rules = {acl.USERS[a]: rule for a, rule in acl.RULES.items()}
    rules[acl.OPERATOR_USER] = acl.OPERATOR_RULE
    passwords = load_passwords(sorted(rules), tmp_path / "secrets.json")
    root = redis.Redis.from_url(valkey_url)
    apply_users(root, rules, passwords)
    urls = {a: with_credentials(valkey_url, u, passwords[u]) for a, u in acl.USERS.items()}
    urls["operator"] = with_credentials(valkey_url, acl.OPERATOR_USER, passwords[acl.OPERATOR_USER])
    load_scripts(urls["operator"])  # as `meshc run --acl` does: agents may not load them
    yield urls
    for user in rules:
        root.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]
    root.close()


def test_an_llm_agent_runs_under_its_own_acl_user(
    valkey_url: str,
    fake_llm: FakeLLM,
    review_llm: Built,
    users: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in demo_overrides(fake_llm.url, "tiny", environ={}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(llm_call, "DEFAULT_BACKOFF", llm_call.Backoff(base=0.01, cap=0.05))
    fake_llm.then("429")  # the hold is written by the agent's user too
    fake_llm.retry_after = "0.1"
    mesh = review_llm.load_spec()

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "doc.review.grammar", {"doc_id": "d", "chunk_id": 1, "text": "Fine."})
        w = Worker(mesh, "grammar", BUILTINS["llm"], redis_url=users["grammar"], block_ms=20)
        async with running(w):
            await until(has(r, "doc.suggestions.grammar", 1))
        [(_, out)] = await entries(r, "doc.suggestions.grammar")
        assert data(out)["lens"] == "grammar" and out[b"llm_calls"] == b"1"
        assert await r.exists("doc_review_llm:grammar:llm:bucket") == 1
        await r.aclose()

    asyncio.run(scenario())
    totals = admin.status(mesh, users["operator"])["agents"]["grammar"]["llm"]
    assert totals["calls"] == 2 and totals["errors"] == 1
