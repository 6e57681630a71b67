"""A worker process started with ``Built.worker_env()`` imports the compiled package
and the user's handlers, as ``meshc run`` and ``meshc demo`` start their workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from meshc.codegen.build import build_cached

ROOT = Path(__file__).resolve().parents[2]


def test_worker_env_puts_the_build_then_the_folder_then_the_old_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    built = build_cached(str(ROOT / "meshes" / "pipeline.yaml"), folder=tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert built.worker_env() == {"PYTHONPATH": os.pathsep.join([str(built.root), str(tmp_path)])}
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    paths = built.worker_env()["PYTHONPATH"].split(os.pathsep)
    assert paths == [str(built.root), str(tmp_path), "/elsewhere"]


def test_a_process_with_the_worker_env_imports_the_build_and_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_handlers.py").write_text("VALUE = 7\n")
    built = build_cached(str(ROOT / "meshes" / "pipeline.yaml"), folder=tmp_path)
    probe = f"import {built.package}.topology as t, user_handlers as u; print(t.MESH.name, u.VALUE)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | built.worker_env()
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pipeline", "7"]
