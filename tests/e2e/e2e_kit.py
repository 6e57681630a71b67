"""Helpers of the end-to-end tests: the CLI in-process or as a process, small meshes
written into the test's folder, and polling."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import redis
from cli_kit import Outcome, cli, wait_for  # noqa: F401 - the e2e tests import them from here
from meshc.codegen.build import Built, build_cached
from meshc.runtime.spec import MeshSpec

REPO = Path(__file__).resolve().parents[2]


def meshc_process(*args: str, cwd: Path, timeout: float = 120.0) -> Outcome:
    """Run ``python -m meshc ARGS`` as its own process, as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "meshc", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def write_mesh(folder: Path, name: str, mesh: str, handlers: str = "") -> Path:
    """``<name>.yaml`` (and ``<name>_handlers.py`` when given) in ``folder``."""
    if handlers:
        (folder / f"{name}_handlers.py").write_text(textwrap.dedent(handlers), encoding="utf-8")
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(mesh), encoding="utf-8")
    return path


def build(path: Path) -> tuple[Built, MeshSpec]:
    built = build_cached(str(path))
    return built, built.load_spec()


def xlen(url: str, key: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.xlen(key))
    finally:
        client.close()


def pending(url: str, key: str, group: str) -> int:
    """Entries of ``group`` on ``key`` delivered but not acknowledged."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.xpending(key, group)["pending"])
    finally:
        client.close()
