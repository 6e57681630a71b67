"""The embedded server against the other users of the machine.

It listens on 127.0.0.1, where every local user can connect, and keeps its data,
password and users in ``.meshc/``. The attacks: connect without the password (or
with a guess), read the folder's files, find the password on a command line, in
``server.json`` or a log. Each runs on the embedded server started with Valkey 9 and
with Redis 7.0 as its binary where the test is about the server, and as a second
local user where it is about files.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import redis
from attack_kit import OtherUser
from cli_kit import cli, wait_for
from meshc.runtime.connect import ServerUnreachable, connect
from meshc.runtime.process.server import ensure_server, resolve_url

READ_ALL = """
    import json, os, sys
    results = {}
    for path in sys.argv[1:]:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                open(path, "rb").read(1)
            results[path] = "read"
        except PermissionError:
            results[path] = "denied"
        except OSError as err:
            results[path] = type(err).__name__
    print(json.dumps(results))
"""

CONNECT = """
    import socket, sys
    def ask(words):
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as sock:
            frame = "*%d\\r\\n" % len(words) + "".join(
                "$%d\\r\\n%s\\r\\n" % (len(w), w) for w in words)
            sock.sendall(frame.encode())
            return sock.makefile("rb").readline().decode().strip()
    print(ask(["PING"]))
    print(ask(["AUTH", "guess"]))
    print(ask(["AUTH", "default", ""]))
    print(ask(["KEYS", "*"]))
"""


def _every_path(state: Path) -> list[Path]:
    return [state, *sorted(state.rglob("*"))]


def test_no_other_user_can_read_the_state_folder(open_folder: Path, other_user: OtherUser) -> None:
    info = ensure_server(open_folder)
    with connect(info.url) as client:
        client.xadd("g.in", {"data": b'{"text": "private"}'})
    state = open_folder / ".meshc"
    paths = [str(p) for p in _every_path(state)]
    for name in ("server.pass", "server.json", "users.acl", "server.log", "appendonlydir"):
        assert str(state / name) in paths, name
    control = str(open_folder / "guarded.yaml")

    seen = json.loads(other_user.run(READ_ALL, control, *paths).stdout)

    assert seen.pop(control) == "read", "the other user must reach the folder for this test"
    assert set(seen.values()) == {"denied"}, seen


def test_every_file_the_server_writes_is_its_owner_s_alone(open_folder: Path) -> None:
    """Even behind the 0700 folder (a copy elsewhere keeps its mode): the files that
    the running server creates itself, a rewritten AOF and a saved users.acl, too."""
    info = ensure_server(open_folder)
    with connect(info.url) as client:
        client.xadd("g.in", {"data": b"{}"})
        client.execute_command("ACL", "SAVE")
        client.bgrewriteaof()
        wait_for(lambda: _rewritten(client), what="the AOF rewrite")
    for path in _every_path(open_folder / ".meshc"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def _rewritten(client: redis.Redis) -> bool:
    persistence = client.info("persistence")
    busy = persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]
    return not busy and persistence["aof_rewrites"] >= 1


def test_an_old_open_folder_is_closed_at_start(open_folder: Path) -> None:
    """Folders made by an older meshc were 0755 with 0644 files."""
    state = open_folder / ".meshc"
    (state / "appendonlydir").mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    (state / "acl-secrets.json").write_text("{}")
    (state / "acl-secrets.json").chmod(0o644)
    ensure_server(open_folder)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "acl-secrets.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "appendonlydir").stat().st_mode) == 0o700


def test_connecting_without_the_password_is_refused(
    open_folder: Path, embedded_binary: str, other_user: OtherUser
) -> None:
    info = ensure_server(open_folder)
    with connect(info.url) as client:
        client.set("secret", "1")

    ping, guess, empty, keys = other_user.run(CONNECT, str(info.port)).stdout.splitlines()

    assert ping.startswith("-NOAUTH"), ping
    assert guess.startswith("-WRONGPASS") and empty.startswith("-WRONGPASS"), (guess, empty)
    assert keys.startswith("-NOAUTH"), keys
    with pytest.raises(ServerUnreachable, match="refused to log us in"):
        connect(info.address)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=info.port, password="not-it").ping()


def test_the_password_is_in_no_command_line_record_or_log(
    open_folder: Path, embedded_binary: str
) -> None:
    info = ensure_server(open_folder)
    state = open_folder / ".meshc"
    password = (state / "server.pass").read_text().strip()
    assert len(password) >= 32 and info.password == password
    cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
    assert password.encode() not in cmdline
    assert password not in (state / "server.json").read_text()
    assert password not in (state / "users.acl").read_text()  # only its SHA-256
    assert password not in (state / "server.log").read_text()
    record = json.loads((state / "server.json").read_text())
    assert record["url"] == info.address and record["pid"] == info.pid
    assert password not in repr(info)


def test_commands_log_in_with_the_folder_s_password(
    open_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(open_folder)
    monkeypatch.delenv("REDIS_URL", raising=False)
    started = cli("server", "start")
    assert started.code == 0, started.err
    password = (open_folder / ".meshc" / "server.pass").read_text().strip()
    url = resolve_url(None, start=False)
    assert password in url and connect(url).ping()

    sent = cli("submit", "guarded.yaml", "g.in", "--json", '{"text": "hi"}')
    status = cli("status", "guarded.yaml", "--format", "json")
    shown = cli("server", "status")

    assert sent.code == 0 and status.code == 0 and shown.code == 0, (sent.err, status.err)
    assert json.loads(status.out)["streams"]["g.in"]["length"] == 1
    for outcome in (started, sent, status, shown):
        assert password not in outcome.out + outcome.err


def test_a_lost_password_file_gets_a_new_password_and_the_server_follows(
    open_folder: Path,
) -> None:
    """The password file is the truth: a server started with another is restarted."""
    first = ensure_server(open_folder)
    os.unlink(open_folder / ".meshc" / "server.pass")
    second = ensure_server(open_folder)
    assert second.password and second.password != first.password
    assert connect(second.url).ping()
    with pytest.raises(ServerUnreachable):
        connect(first.url)
