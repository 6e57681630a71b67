"""The LLM review mesh with ``--metrics-port``: model requests and tokens on the
Prometheus endpoint equal what the agents recorded on the server (``meshc status``)."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import pytest
from fake_server import FakeLLM
from meshc.codegen.build import Built
from meshc.ops import admin
from meshc.ops.client import MeshClient
from meshc.runtime.llm.settings import demo_overrides
from meshc.runtime.process.launch import run_mesh
from meshc.runtime.process.server import free_port
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
LENSES = ["clarity", "grammar", "structure", "tone"]


def llm_samples(port: int) -> dict[tuple[str, str, str], float]:
    """(sample, agent, kind) -> value for the LLM counters of the endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, s.labels["agent"], s.labels.get("kind", "")): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("meshc_llm_")
        for s in family.samples
    }


def test_llm_requests_and_tokens_match_the_agents_own_totals(
    valkey_url: str, fake_llm: FakeLLM, review_llm: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    spec = review_llm.load_spec()
    env = {"PYTHONPATH": f"{review_llm.root}:{ROOT}",
           **demo_overrides(fake_llm.url, "tiny", environ={})}  # fmt: skip
    port, stop = free_port(), threading.Event()
    runner = threading.Thread(
        target=run_mesh,
        args=(spec, review_llm.package, valkey_url),
        kwargs={"extra_env": env, "stop": stop, "metrics": ("127.0.0.1", port)},
        daemon=True,
    )
    runner.start()
    try:
        with MeshClient(spec, valkey_url) as client:
            tasks = [{"doc_id": f"d{i}", "chunk_id": i, "text": "Some text."} for i in range(3)]
            found = client.wait_many([s.trace for s in client.submit_many(tasks)], timeout=30)
        assert len(found) == 3
        llm = admin.status(spec, valkey_url)["agents"]
        expected = {}
        for lens in LENSES:
            t = llm[lens]["llm"]
            expected[("meshc_llm_calls_total", lens, "")] = t["calls"]
            expected[("meshc_llm_tokens_total", lens, "prompt")] = t["prompt_tokens"]
            expected[("meshc_llm_tokens_total", lens, "completion")] = t["completion_tokens"]
        assert all(v > 0 for v in expected.values()), expected
        deadline = time.monotonic() + 30
        while llm_samples(port) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert llm_samples(port) == expected
    finally:
        stop.set()
        runner.join(timeout=30)
