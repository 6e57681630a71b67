"""Settings, prompts and secrets: the key never leaks; bad configuration fails early;
the LLM review mesh compiles, and one of its lenses runs against the fake server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_server import FakeLLM
from llm_kit import KEY_ENV, REVIEW_LLM, SECRET, data, llm_mesh, only_dead_letter, worker
from meshc.codegen.build import Built
from meshc.ops import admin
from meshc.runtime.builtins import BUILTINS
from meshc.runtime.errors import ConfigError
from meshc.runtime.llm import call as llm_call
from meshc.runtime.llm.prompt import Prompt, ReplyError, is_strict
from meshc.runtime.llm.settings import LlmSettings, demo_overrides
from meshc.runtime.spec import AgentSpec
from meshc.runtime.worker import Worker
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from stream_kit import add, entries, has, running, until


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_call, "DEFAULT_BACKOFF", llm_call.Backoff(base=0.01, cap=0.05))


@pytest.mark.parametrize("mode", ["echo_key", "leak_reply"])
def test_the_api_key_never_reaches_logs_or_dead_letters(
    valkey_url: str,
    fake_llm: FakeLLM,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Even when the server (or the model) repeats the Authorization header back."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    fake_llm.mode = mode
    mesh = llm_mesh(fake_llm.url, api_key_env=KEY_ENV, retries=1, policy={"max_deliveries": 1})
    caplog.set_level(logging.DEBUG)

    letter = asyncio.run(only_dead_letter(mesh, valkey_url))
    error = letter[b"error"].decode()
    assert SECRET not in error and "Bearer ***" in error
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in fake_llm.requests)
    assert "Bearer ***" in caplog.text and SECRET not in caplog.text


def test_the_api_key_never_reaches_generated_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHC_LLM_API_KEY", SECRET)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "meshc", "compile", str(REVIEW_LLM), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 5
    assert not [p for p in files if SECRET in p.read_text(encoding="utf-8")]
    topology = (out / "doc_review_llm" / "topology.py").read_text(encoding="utf-8")
    assert "'api_key_env': 'MESHC_LLM_API_KEY'" in topology.replace('"', "'")


def test_a_missing_key_variable_stops_the_worker_before_it_reads(
    valkey_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    mesh = llm_mesh("http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV} .* is not set"):
        worker(mesh, valkey_url)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prompt": "{% if n %}unclosed"}, "prompt is no valid template"),
        ({"prompt": ""}, "no `prompt`"),
        ({"model": {"base_url": "http://x/v1"}}, "no `model` settings"),
    ],
)
def test_bad_settings_are_config_errors(
    valkey_url: str, settings: dict[str, Any], message: str
) -> None:
    mesh = llm_mesh("http://127.0.0.1:9/v1")
    spec = mesh.agents["ask"]
    broken = AgentSpec(
        spec.name,
        spec.role,
        spec.reads,
        spec.writes,
        spec.handler,
        spec.policy,
        settings={**spec.settings, **settings},
    )
    mesh.agents["ask"] = broken
    with pytest.raises(ConfigError, match=message):
        worker(mesh, valkey_url)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("{{ missing_field }}", "'missing_field' is undefined"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ],
)
def test_a_prompt_that_cannot_render_dead_letters_at_once(
    valkey_url: str, fake_llm: FakeLLM, prompt: str, expected: str
) -> None:
    """StrictUndefined and the sandbox: the same payload would fail every time."""
    mesh = llm_mesh(fake_llm.url, prompt=prompt)

    letter = asyncio.run(only_dead_letter(mesh, valkey_url))
    error = letter[b"error"].decode()
    assert "prompt cannot be rendered" in error and expected in error
    assert letter[b"deliveries"] == b"1"
    assert fake_llm.requests == []


def test_environment_overrides_and_demo_settings() -> None:
    spec = llm_mesh("http://model.example/v1").agents["ask"]
    plain = LlmSettings.of(spec, {})
    assert plain.base_url == "http://model.example/v1" and plain.name == "fake-model"
    assert plain.request_timeout == 5.0 and plain.retries == 2
    env = demo_overrides("http://127.0.0.1:8081/v1", "qwen", environ={})
    assert env == {
        "MESHC_LLM_BASE_URL": "http://127.0.0.1:8081/v1",
        "MESHC_LLM_MODEL": "qwen",
        "MESHC_LLM_API_KEY": "none",
    }
    moved = LlmSettings.of(spec, env)
    assert moved.base_url == "http://127.0.0.1:8081/v1" and moved.name == "qwen"
    keyed = demo_overrides("http://h/v1", "m", environ={"MESHC_LLM_API_KEY": SECRET})
    assert "MESHC_LLM_API_KEY" not in keyed  # a real key is inherited, never copied


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: int
    message: str


class Lens(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc_id: str
    findings: list[Finding]


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lenses: dict[str, list[Finding]]
    note: str | None = None


def test_strict_schemas_and_lenient_parsing() -> None:
    assert is_strict(Lens.model_json_schema())
    assert not is_strict(Summary.model_json_schema())  # open dict, optional field
    prompt = Prompt("lens", "{{ doc_id }}", Lens)
    assert prompt.response_format()["json_schema"]["strict"] is True
    fenced = '```json\n{"doc_id": "d", "findings": [{"start": 1, "message": "m"}]}\n```'
    assert prompt.parse(fenced) == Lens(doc_id="d", findings=[Finding(start=1, message="m")])
    assert prompt.parse('Here it is: {"doc_id": "d", "findings": []} Done.') == Lens(
        doc_id="d", findings=[]
    )
    with pytest.raises(ReplyError, match=r"findings\.0\.start: Input should be a valid integer"):
        prompt.parse('{"doc_id": "d", "findings": [{"start": "x", "message": "m"}]}')


def test_a_lens_of_the_llm_review_mesh_runs_against_a_model_server(
    valkey_url: str, fake_llm: FakeLLM, review_llm: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled mesh, its prompt and its types, pointed at the fake by demo_overrides."""
    for name, value in demo_overrides(fake_llm.url, "tiny", environ={}).items():
        monkeypatch.setenv(name, value)
    mesh = review_llm.load_spec()
    assert [a for a, s in sorted(mesh.agents.items()) if s.handler == "llm"] == [
        "clarity",
        "grammar",
        "structure",
        "tone",
    ]
    task = {"doc_id": "memo@1", "chunk_id": 0, "text": "Their is a mistake here."}

    async def scenario() -> None:
        r = Redis.from_url(valkey_url)
        await add(r, "doc.review.grammar", task)
        w = Worker(mesh, "grammar", BUILTINS["llm"], redis_url=valkey_url, block_ms=20)
        async with running(w):
            await until(has(r, "doc.suggestions.grammar", 1))
        [(_, out)] = await entries(r, "doc.suggestions.grammar")
        assert data(out) == {"doc_id": "memo@1", "chunk_id": 0, "lens": "grammar", "findings": []}
        await r.aclose()

    asyncio.run(scenario())
    [seen] = fake_llm.requests
    assert seen.body["model"] == "tiny" and seen.headers["authorization"] == "Bearer none"
    assert "Their is a mistake here." in seen.body["messages"][1]["content"]
    assert seen.body["response_format"]["json_schema"]["name"] == "LensResult"
    report = admin.status(mesh, valkey_url)
    assert report["agents"]["grammar"]["llm"]["calls"] == 1
    assert "llm" not in report["agents"]["aggregator"]
