"""End-to-end tests: the real embedded Valkey, real worker processes, the real CLI.

Every test runs in its own temporary working folder, so the embedded server it starts
(``.meshc/`` of that folder) is its own; the folder's server is stopped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from meshc.runtime.process.server import ensure_server, stop_server


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working folder as the current directory, with no REDIS_URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    yield tmp_path
    stop_server(tmp_path)


@pytest.fixture
def server(workdir: Path) -> str:
    """The working folder's embedded server, started; its URL."""
    return ensure_server(workdir).url
