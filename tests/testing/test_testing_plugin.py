"""The pytest fixtures: a mesh file's workers on a throw-away server, driven from a test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from meshc.runtime.context import Context
from meshc.testing.plugin import MeshFactory

ROOT = Path(__file__).resolve().parents[2]
REVIEW = ROOT / "meshes/doc_review.yaml"


def test_a_task_goes_through_the_review_mesh(meshc_mesh: MeshFactory) -> None:
    mesh = meshc_mesh(REVIEW)
    task = mesh.submit({"doc_id": "d1", "chunk_id": 0, "text": "They was late to the the meeting."})
    summary = mesh.wait(task, timeout=20).data
    assert summary["doc_id"] == "d1" and summary["missing"] == []
    assert {f["suggestion"] for f in summary["lenses"]["grammar"]} >= {"the"}
    assert mesh.settle(20)
    hops = mesh.trace(task)
    by_stream = {h.stream: h for h in hops}
    assert set(by_stream) == set(mesh.spec.streams)  # every stream saw the task once
    assert len(hops) == len(by_stream)
    assert by_stream["doc.review.tasks"].parent == ""
    assert by_stream["doc.review.grammar"].parent == task.entry_id
    assert by_stream["doc.review.summary"].agent == "aggregator"
    assert [h.data for h in mesh.results()] == [summary]
    assert mesh.dead_letters() == []
    assert sum(s.committed for s in mesh.stats()["grammar"]) == 1


def test_handlers_can_be_replaced_and_policy_tuned(meshc_mesh: MeshFactory) -> None:
    seen: list[str] = []

    def tone(task: Any, ctx: Context) -> dict[str, Any]:
        seen.append(ctx.trace)
        return {"doc_id": task.doc_id, "chunk_id": task.chunk_id, "lens": "tone", "findings": []}

    mesh = meshc_mesh(REVIEW, handlers={"tone": tone}, replicas=2, visibility_timeout=0.5)
    assert len(mesh.stats()["tone"]) == 2
    tasks = mesh.submit_many([{"doc_id": "d", "chunk_id": n, "text": "Hi."} for n in range(5)])
    for t in tasks:
        assert mesh.wait(t, timeout=20).data["lenses"]["tone"] == []
    assert sorted(seen) == sorted(t.trace for t in tasks)


def test_an_llm_mesh_runs_with_stubs(meshc_mesh: MeshFactory) -> None:
    path = ROOT / "meshes/doc_review_llm.yaml"
    if not path.exists():
        pytest.skip("no LLM example in this checkout")

    def stub(task: Any, ctx: Context) -> dict[str, Any]:
        lens = ctx.agent
        return {"doc_id": task.doc_id, "chunk_id": task.chunk_id, "lens": lens, "findings": []}

    lenses = ("grammar", "clarity", "tone", "structure")
    mesh = meshc_mesh(path, handlers=dict.fromkeys(lenses, stub))
    task = mesh.submit({"doc_id": "d", "chunk_id": 1, "text": "Hello."})
    assert set(mesh.wait(task, timeout=20).data["lenses"]) == set(lenses)


def test_an_llm_mesh_without_stubs_is_a_usage_error(meshc_mesh: MeshFactory) -> None:
    path = ROOT / "meshes/doc_review_llm.yaml"
    if not path.exists():
        pytest.skip("no LLM example in this checkout")
    with pytest.raises(pytest.UsageError, match="uses the built-in `llm` handler"):
        meshc_mesh(path)


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``folder`` as a user's project runs it: no conftest of this repository."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )


def test_the_plugin_is_loaded_with_dash_p(tmp_path: Path) -> None:
    """A project opts in with ``-p meshc.testing.plugin`` and gets the fixtures."""
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            f"""
            def test_pipeline(meshc_mesh):
                mesh = meshc_mesh({str(ROOT / "meshes/pipeline.yaml")!r})
                task = mesh.submit({{"id": "a", "text": "One two.  Three!"}})
                assert mesh.wait(task, timeout=20).data["words"] == 3
            """
        )
    )
    done = _pytest(tmp_path, "-p", "meshc.testing.plugin", "test_user.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_plugin_is_not_loaded_unless_asked(tmp_path: Path) -> None:
    """Installing meshc changes no other project's pytest runs: no ``pytest11`` entry."""
    (tmp_path / "test_user.py").write_text("def test_x(meshc_mesh):\n    pass\n")
    done = _pytest(tmp_path, "test_user.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "fixture 'meshc_mesh' not found" in done.stdout


def test_a_pytest_plugins_line_loads_it(tmp_path: Path) -> None:
    """The other way to opt in: ``pytest_plugins`` in the project's top conftest.py."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["meshc.testing.plugin"]\n')
    done = _pytest(tmp_path, "--fixtures")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "meshc_mesh" in done.stdout and "meshc_server" in done.stdout
