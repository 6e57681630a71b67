"""The committed ``generated/`` package runs on its own: ``python -m generated.doc_review``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from e2e_kit import REPO, cli
from meshc.demo import build_review_mesh, review_tasks
from meshc.ops.client import MeshClient

DOCS = {
    "a": "This are a short note. It have two errors.\n",
    "b": "# Title\n\nWe will basically ship it on Monday!!!\n",
}


def _generated_root(tmp: Path) -> Path:
    """The repository when ``generated/doc_review`` is there, else a fresh compile."""
    if (REPO / "generated" / "doc_review" / "__main__.py").exists():
        return REPO
    mesh = REPO / "meshes" / "doc_review.yaml"
    assert cli("compile", str(mesh), "-o", str(tmp / "generated")).code == 0
    return tmp


def test_generated_package_processes_submitted_tasks(server: str, workdir: Path) -> None:
    root = _generated_root(workdir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "generated.doc_review", "--redis", server],
        cwd=root,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        spec = build_review_mesh().load_spec()
        tasks = review_tasks(DOCS)
        with MeshClient(spec, server) as client:
            submitted = client.submit_many(tasks)
            found = client.wait_many([s.trace for s in submitted], timeout=60)
        assert len(found) == len(tasks)
        grammar = {r.data["doc_id"]: r.data["lenses"]["grammar"] for r in found.values()}
        assert grammar["a"], "the grammar lens found nothing in 'This are a short note'"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "worker grammar" in err and "Traceback" not in err
