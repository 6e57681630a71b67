"""``--live`` against a real server: lengths, lag, pending, dead letters.

``meshc.ops.live`` reads them with ``meshc status``'s reads; the renderers only draw
the ``LiveStats`` it hands them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from meshc.api import analyze_file
from meshc.codegen.build import build_cached
from meshc.core import CoreMesh
from meshc.ops.admin import status
from meshc.ops.live import live_stats, read_live
from meshc.render import render
from meshc.render.live import GroupStats
from meshc.runtime.spec import MeshSpec
from render_support import ROOT

DOC_REVIEW = ROOT / "meshes" / "doc_review.yaml"
PIPELINE = (ROOT / "meshes" / "pipeline.yaml").read_text(encoding="utf-8")


def _compiled(path: Path, folder: Path) -> tuple[CoreMesh, MeshSpec]:
    """The core mesh the renderers draw and the compiled spec the status reads use."""
    analysis = analyze_file(str(path))
    assert analysis.ok and analysis.core is not None, analysis.diagnostics
    return analysis.core, build_cached(str(path), folder=folder).load_spec()


@pytest.fixture
def doc_review(tmp_path: Path) -> tuple[CoreMesh, MeshSpec]:
    return _compiled(DOC_REVIEW, tmp_path)


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


def test_read_live_counts(valkey: redis.Redis, doc_review: tuple[CoreMesh, MeshSpec]) -> None:
    _fill_doc_review(valkey)
    core, spec = doc_review
    live = read_live(spec, valkey)
    assert live.lengths["doc.review.tasks"] == 5
    assert live.lengths["doc.review.summary"] == 0
    assert live.groups[("doc.review.tasks", "coordinator")] == GroupStats(lag=3, pending=2)
    assert live.groups[("doc.suggestions.grammar", "aggregator")] == GroupStats(lag=1, pending=0)
    assert live.dead == {a: (2 if a == "tone" else 0) for a in core.agents}
    assert ("doc.review.grammar", "grammar") not in live.groups
    assert live.read_note("doc.review.grammar", "grammar") == "no group yet"


def test_live_figures_are_the_status_figures(
    valkey: redis.Redis, doc_review: tuple[CoreMesh, MeshSpec]
) -> None:
    _fill_doc_review(valkey)
    _, spec = doc_review
    report = status(spec, valkey)
    live = live_stats(report)
    for name, stream in report["streams"].items():
        assert live.lengths[name] == stream["length"]
        for group, g in stream["groups"].items():
            expected = GroupStats(g["lag"], g["pending"]) if g["exists"] else None
            assert live.groups.get((name, group)) == expected
    assert live.dead == {name: a["dead_letters"] for name, a in report["agents"].items()}


def test_lag_is_counted_where_the_server_cannot_say(
    valkey: redis.Redis, doc_review: tuple[CoreMesh, MeshSpec]
) -> None:
    """After an XDEL the server reports no lag for a group; the status reads count it."""
    _fill_doc_review(valkey)
    first = valkey.xrange("doc.review.tasks", count=3)[2][0]  # delivered to nobody yet
    valkey.xdel("doc.review.tasks", first)
    assert valkey.xinfo_groups("doc.review.tasks")[0]["lag"] is None
    live = read_live(doc_review[1], valkey)
    assert live.groups[("doc.review.tasks", "coordinator")] == GroupStats(lag=2, pending=2)


def test_live_annotations_in_every_view(
    valkey: redis.Redis, doc_review: tuple[CoreMesh, MeshSpec]
) -> None:
    _fill_doc_review(valkey)
    core, spec = doc_review
    live = read_live(spec, valkey)
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


def test_partitions_are_summed(valkey: redis.Redis, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.replace("version: 1", "version: 1\npartitions: 2"))
    _, spec = _compiled(path, tmp_path)
    for p, n in ((0, 2), (1, 3)):
        for _ in range(n):
            valkey.xadd(f"text.raw{{pipeline:{p}}}", {"data": "{}"})
        valkey.xgroup_create(f"text.raw{{pipeline:{p}}}", "normalize", id="0")
        valkey.xadd(f"pipeline.dlq.stats{{pipeline:{p}}}", {"error": "x"})
    valkey.xreadgroup("normalize", "w", {"text.raw{pipeline:1}": ">"}, count=1)
    live = read_live(spec, valkey)
    assert live.lengths["text.raw"] == 5
    assert live.groups[("text.raw", "normalize")] == GroupStats(lag=4, pending=1)
    assert live.dead["stats"] == 2


def test_a_group_missing_on_one_partition_is_not_there_yet(
    valkey: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.replace("version: 1", "version: 1\npartitions: 2"))
    _, spec = _compiled(path, tmp_path)
    valkey.xadd("text.raw{pipeline:0}", {"data": "{}"})
    valkey.xgroup_create("text.raw{pipeline:0}", "normalize", id="0")
    live = read_live(spec, valkey)
    assert live.read_note("text.raw", "normalize") == "no group yet"


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    full = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "meshc", "render", *args],
        capture_output=True, text=True, cwd=cwd, env=full, check=False, timeout=60,
    )  # fmt: skip


def test_cli_live_with_redis_flag_and_env(
    valkey: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    _fill_doc_review(valkey)
    done = _cli(str(DOC_REVIEW), "--format", "text", "--live", "--redis", valkey_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "coordinator [coordinator] (lag 3, pending 2)" in done.stdout
    env = {"REDIS_URL": valkey_url}
    done = _cli(str(DOC_REVIEW), "--format", "mermaid", "--live", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "DLQ 2" in done.stdout


def test_cli_live_without_a_server_says_how(tmp_path: Path) -> None:
    done = _cli(str(DOC_REVIEW), "--live", cwd=tmp_path)
    assert done.returncode == 2
    assert "--redis URL" in done.stderr and "Traceback" not in done.stderr


def test_cli_live_unreachable_server_is_a_clear_error() -> None:
    done = _cli(str(DOC_REVIEW), "--live", "--redis", "redis://127.0.0.1:1/0")
    assert done.returncode == 2  # as for `meshc status`: fix the URL, then retry
    assert "cannot reach the server at redis://127.0.0.1:1/0" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_live_finds_the_embedded_server_of_the_folder(
    valkey: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    _fill_doc_review(valkey)
    (tmp_path / ".meshc").mkdir()
    state = {"url": valkey_url, "pid": os.getpid()}  # a live process: the server is "running"
    (tmp_path / ".meshc" / "server.json").write_text(json.dumps(state))
    done = _cli(str(DOC_REVIEW), "--format", "text", "--live", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "doc.review.tasks (ReviewTask) [len 5]" in done.stdout
