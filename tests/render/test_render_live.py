"""``--live`` against a real embedded Valkey: lengths, lag, pending, dead letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis
from meshc.api import analyze_text
from meshc.render import render
from meshc.render.live import GroupStats, read_live
from render_support import ROOT

DOC_REVIEW = ROOT / "meshes" / "doc_review.yaml"
PIPELINE = (ROOT / "meshes" / "pipeline.yaml").read_text(encoding="utf-8")


def _core(text: str):  # type: ignore[no-untyped-def]
    analysis = analyze_text(text, "live.yaml")
    assert analysis.ok and analysis.core is not None, analysis.diagnostics
    return analysis.core


def _fill_doc_review(client: redis.Redis) -> None:
    """5 tasks, coordinator took 2 (unacked); 1 grammar result; 2 dead letters for tone."""
    for i in range(5):
        client.xadd("doc.review.tasks", {"data": f'{{"doc_id": "d", "chunk_id": {i}}}'})
    client.xgroup_create("doc.review.tasks", "coordinator", id="0", mkstream=True)
    client.xreadgroup("coordinator", "c1", {"doc.review.tasks": ">"}, count=2)
    client.xadd("doc.suggestions.grammar", {"data": "{}"})
    client.xgroup_create("doc.suggestions.grammar", "aggregator", id="0")
    for _ in range(2):
        client.xadd("doc_review.dlq.tone", {"error": "boom", "source_stream": "doc.review.tone"})


def test_read_live_counts(valkey: redis.Redis) -> None:
    _fill_doc_review(valkey)
    core = _core(DOC_REVIEW.read_text(encoding="utf-8"))
    live = read_live(valkey, core)
    assert live.lengths["doc.review.tasks"] == 5
    assert live.lengths["doc.review.summary"] == 0
    assert live.groups[("doc.review.tasks", "coordinator")] == GroupStats(lag=3, pending=2)
    assert live.groups[("doc.suggestions.grammar", "aggregator")] == GroupStats(lag=1, pending=0)
    assert live.dead == {a: (2 if a == "tone" else 0) for a in core.agents}
    assert live.read_note("doc.review.grammar", "grammar") == "no group yet"


def test_live_annotations_in_every_view(valkey: redis.Redis) -> None:
    _fill_doc_review(valkey)
    core = _core(DOC_REVIEW.read_text(encoding="utf-8"))
    live = read_live(valkey, core)
    mermaid = str(render(core, "mermaid", live=live))
    assert 's_doc_review_tasks -.->|"lag 3, pending 2"| a_coordinator' in mermaid
    assert "doc.review.tasks<br/>ReviewTask<br/>len 5" in mermaid
    assert "class a_tone dead" in mermaid and "tone<br/>specialist<br/>DLQ 2" in mermaid
    dot = str(render(core, "dot", live=live))
    assert '"doc.review.tasks" -> "coordinator" [style=dashed, label="lag 3, pending 2"];' in dot
    assert "<B>DLQ 2</B>" in dot and 'fillcolor="#fee2e2"' in dot
    tree = str(render(core, "text", live=live))
    assert "doc.review.tasks (ReviewTask) [len 5]" in tree
    assert "coordinator [coordinator] (lag 3, pending 2)" in tree
    assert "tone [specialist] (no group yet) !! DLQ 2" in tree
    page = str(render(core, "html", live=live))
    assert '<span class="dead">2</span>' in page
    assert "coordinator: lag 3, pending 2" in page


def test_partitions_are_summed(valkey: redis.Redis) -> None:
    core = _core(PIPELINE.replace("version: 1", "version: 1\npartitions: 2"))
    for p, n in ((0, 2), (1, 3)):
        for _ in range(n):
            valkey.xadd(f"text.raw{{pipeline:{p}}}", {"data": "{}"})
        valkey.xgroup_create(f"text.raw{{pipeline:{p}}}", "normalize", id="0")
        valkey.xadd(f"pipeline.dlq.stats{{pipeline:{p}}}", {"error": "x"})
    valkey.xreadgroup("normalize", "w", {"text.raw{pipeline:1}": ">"}, count=1)
    live = read_live(valkey, core)
    assert live.lengths["text.raw"] == 5
    assert live.groups[("text.raw", "normalize")] == GroupStats(lag=4, pending=1)
    assert live.dead["stats"] == 2


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    full = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "meshc", "render", *args],
        capture_output=True, text=True, cwd=cwd, env=full, check=False, timeout=60,
    )  # fmt: skip


def test_cli_live_with_redis_flag_and_env(valkey: redis.Redis, valkey_url: str) -> None:
    _fill_doc_review(valkey)
    done = _cli(str(DOC_REVIEW), "--format", "text", "--live", "--redis", valkey_url)
    assert done.returncode == 0, done.stderr
    assert "coordinator [coordinator] (lag 3, pending 2)" in done.stdout
    done = _cli(str(DOC_REVIEW), "--format", "mermaid", "--live", env={"REDIS_URL": valkey_url})
    assert done.returncode == 0, done.stderr
    assert "DLQ 2" in done.stdout


def test_cli_live_without_a_server_says_how(tmp_path: Path) -> None:
    done = _cli(str(DOC_REVIEW), "--live", cwd=tmp_path)
    assert done.returncode == 2
    assert "--redis URL" in done.stderr and "Traceback" not in done.stderr


def test_cli_live_unreachable_server_is_a_clear_error() -> None:
    done = _cli(str(DOC_REVIEW), "--live", "--redis", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert "cannot reach the server at redis://127.0.0.1:1/0" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_live_finds_the_embedded_server_of_the_folder(
    valkey: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    _fill_doc_review(valkey)
    (tmp_path / ".meshc").mkdir()
    (tmp_path / ".meshc" / "server.json").write_text(json.dumps({"url": valkey_url, "pid": 1}))
    done = _cli(str(DOC_REVIEW), "--format", "text", "--live", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "doc.review.tasks (ReviewTask) [len 5]" in done.stdout
