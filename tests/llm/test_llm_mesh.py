"""The whole LLM review mesh as ``meshc demo --model-url`` runs it: compiled, every
agent a supervised worker process, pointed at a model server by ``demo_overrides``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from fake_server import FakeLLM
from meshc.codegen.build import Built
from meshc.ops import admin
from meshc.ops.client import MeshClient
from meshc.runtime.llm.settings import demo_overrides
from meshc.runtime.process.launch import run_mesh

ROOT = Path(__file__).resolve().parents[2]
LENSES = ["clarity", "grammar", "structure", "tone"]


def test_the_llm_review_mesh_reviews_chunks_end_to_end(
    valkey_url: str, fake_llm: FakeLLM, review_llm: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    spec = review_llm.load_spec()
    env = {
        "PYTHONPATH": f"{review_llm.root}:{ROOT}",
        **demo_overrides(fake_llm.url, "tiny", environ={}),
    }
    stop = threading.Event()
    runner = threading.Thread(
        target=run_mesh,
        args=(spec, review_llm.package, valkey_url),
        kwargs={"extra_env": env, "stop": stop},
        daemon=True,
    )
    runner.start()
    try:
        with MeshClient(spec, valkey_url) as client:
            tasks = [{"doc_id": f"d{i}", "chunk_id": i, "text": "Some text."} for i in range(3)]
            traces = [s.trace for s in client.submit_many(tasks)]
            results = client.wait_many(traces, timeout=30)
    finally:
        stop.set()
        runner.join(timeout=30)
    assert len(results) == 3
    for result in results.values():
        assert sorted(result.data["lenses"]) == LENSES and result.data["missing"] == []
    assert len(fake_llm.requests) == 12
    assert {r.body["model"] for r in fake_llm.requests} == {"tiny"}
    report = admin.status(spec, valkey_url)
    assert [report["agents"][lens]["llm"]["calls"] for lens in LENSES] == [3, 3, 3, 3]


def test_meshc_demo_with_model_url_runs_the_llm_mesh(
    fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``meshc demo --model-url URL`` end to end, in a fresh folder with its own server."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "meshc", "demo", "--docs", "2", "--model-url", fake_llm.url]
    try:
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "meshc", "server", "stop"], cwd=tmp_path, env=env, check=False
        )
    assert done.returncode == 0, done.stderr
    assert "incident-report" in done.stdout and "Total: 2 documents" in done.stdout
    assert fake_llm.requests and {r.body["model"] for r in fake_llm.requests} == {"local-model"}
