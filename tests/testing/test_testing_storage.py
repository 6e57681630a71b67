"""``meshc test`` leaves no ``.hypothesis/`` in the folder it runs in: hypothesis's
files go under ``.meshc/``, or where HYPOTHESIS_STORAGE_DIRECTORY says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _meshc_test(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    mesh = ROOT / "meshes" / "pipeline.yaml"
    args = ["test", str(mesh), "--agent", "normalize", "--max-examples", "5", "--seed", "1"]
    return subprocess.run(
        [sys.executable, "-m", "meshc", *args],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)


def test_hypothesis_files_go_under_dot_meshc(tmp_path: Path, plain_env: None) -> None:
    done = _meshc_test(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / ".hypothesis").exists()
    assert any((tmp_path / ".meshc" / "hypothesis").iterdir())


def test_the_storage_variable_still_decides(tmp_path: Path, plain_env: None) -> None:
    elsewhere = tmp_path / "elsewhere"
    done = _meshc_test(tmp_path, HYPOTHESIS_STORAGE_DIRECTORY=str(elsewhere))
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(elsewhere.iterdir())
    assert not (tmp_path / ".hypothesis").exists()
    assert not (tmp_path / ".meshc" / "hypothesis").exists()
