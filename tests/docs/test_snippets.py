"""Every shell command and Python snippet of README.md and docs/ runs, as written.

One test per Markdown file runs its blocks in order (a block may use the files and
the state the ones before it left) in a working folder of its own, holding copies of
``meshes/`` and ``generated/`` as a checkout does. The blocks that need a server
share the session's embedded Valkey (tests/conftest.py), named by ``REDIS_URL`` and
emptied for each file; a ``meshc server start`` in a block starts the folder's own
one, stopped at the end.
See snippets_kit.py for the annotations (skip, file, with, output-of).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from snippets_kit import ROOT, Block, Runner, blocks, runnable

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FILES = [p for p in DOCS if any(runnable(b) for b in blocks(p))]
COPIED = ("meshes", "generated")
MAX_SKIPS = 8  # skips are for what cannot run here; keep them few


@pytest.fixture
def runner(valkey_only_url: str, tmp_path: Path) -> Iterator[Runner]:
    work = tmp_path / "work"
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MESHC_"))}
    env |= {
        "REDIS_URL": valkey_only_url,
        "HOME": str(tmp_path / "home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "NO_COLOR": "1",
    }
    done = Runner(work, env)
    try:
        yield done
    finally:
        stop = [sys.executable, "-m", "meshc", "server", "stop"]
        subprocess.run(stop, cwd=work, env=env, capture_output=True, check=False)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_blocks_of_a_file_run(path: Path, runner: Runner) -> None:
    for block in blocks(path):
        if runnable(block):
            runner.run(block)


def test_skips_are_few_and_give_a_reason() -> None:
    skipped: list[Block] = [b for p in DOCS for b in blocks(p) if b.note == "skip"]
    assert all(len(b.arg.split()) >= 3 for b in skipped), [b.where for b in skipped]
    assert len(skipped) <= MAX_SKIPS, [b.where for b in skipped]


def test_the_collector_finds_the_readme_blocks() -> None:
    """A collector that silently found nothing would pass everything."""
    found = [b for b in blocks(ROOT / "README.md") if runnable(b)]
    langs = {b.lang for b in found}
    assert {"sh", "python", "yaml"} <= langs and len(found) >= 8
    assert any(b.note == "output-of" for b in found)
