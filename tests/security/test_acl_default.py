"""``meshc run --acl`` must leave no way around the per-agent users.

Per-agent users mean nothing while the server's ``default`` user logs anyone in
without a password as a superuser. The attacks, on an outside server of each kind
(Valkey 9, Redis 7.0) whose ``default`` starts password-less, and on the embedded
server (started with each binary): connect as ``default``; as an agent user, change
the users, the configuration or the data wholesale, directly and inside a script.
Meanwhile the operator user must still do its work (submit, status, dlq, trim), with
the server refusing it nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from attack_kit import denied, port_of, resp
from cli_kit import cli
from meshc.codegen.build import Built
from meshc.ops import admin
from meshc.ops.acl import AgentUrls, enable, read_secrets
from meshc.runtime.connect import ServerUnreachable, connect
from meshc.runtime.process.server import ensure_server, stop_server

# What a superuser may do and no mesh user may: each must be refused by the ACLs
# (scripts included: a script runs each command under the caller's rights).
ESCALATIONS: list[list[str]] = [
    ["ACL", "SETUSER", "guarded.echo", "on", "nopass", "+@all", "~*"],
    ["ACL", "SETUSER", "default", "nopass"],
    ["ACL", "LIST"],
    ["CONFIG", "SET", "appendonly", "no"],
    ["CONFIG", "GET", "*"],
    ["FLUSHALL"],
    ["FLUSHDB"],
    ["SCRIPT", "FLUSH"],
    ["CLIENT", "LIST"],
    ["CLIENT", "KILL", "TYPE", "normal"],
    ["KEYS", "*"],
    ["SET", "another.mesh:key", "1"],
    ["EVAL", "return redis.call('FLUSHALL')", "0"],
    ["EVAL", "return redis.call('SET', KEYS[1], '1')", "1", "another.mesh:key"],
    ["SHUTDOWN", "NOSAVE"],
]


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    return tmp_path / "acl-secrets.json"


def _enable(url: str, built: Built, secrets_file: Path) -> AgentUrls:
    return enable(url, built.package, secrets_file)


def _refused_as_default(port: int) -> None:
    ping, guess, keys = resp(port, ["PING"], ["AUTH", "default", "guess"], ["KEYS", "*"])
    assert ping.startswith("-NOAUTH"), ping
    assert guess.startswith("-WRONGPASS"), guess
    assert keys.startswith("-NOAUTH"), keys


def _escalations_refused(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for command in ESCALATIONS:
            with pytest.raises(redis.ResponseError) as refused:
                client.execute_command(*command)
            assert denied(refused.value), (command, str(refused.value))
    finally:
        client.close()


def test_acl_gives_a_passwordless_default_a_password(
    own_server: str, guarded: tuple[Path, Built], secrets_file: Path
) -> None:
    users = _enable(own_server, guarded[1], secrets_file)

    assert users.locked_default
    _refused_as_default(port_of(own_server))
    with pytest.raises(ServerUnreachable, match="refused to log us in"):
        connect(own_server)
    stored = read_secrets(secrets_file)["default"]
    with connect(own_server, password=stored) as admin_client:
        flags = admin_client.acl_getuser("default")["flags"]
        assert "nopass" not in flags and "on" in flags
        assert b"nopass" not in b" ".join(admin_client.execute_command("ACL", "LIST"))


def test_acl_again_on_the_locked_server_needs_no_password_in_the_url(
    own_server: str, guarded: tuple[Path, Built], secrets_file: Path
) -> None:
    _enable(own_server, guarded[1], secrets_file)
    again = _enable(own_server, guarded[1], secrets_file)  # logs in with the stored password
    assert not again.locked_default
    _refused_as_default(port_of(own_server))


@pytest.mark.parametrize("who", ["echo", "feed", "operator"])
def test_no_mesh_user_can_escalate(
    own_server: str, guarded: tuple[Path, Built], secrets_file: Path, who: str
) -> None:
    users = _enable(own_server, guarded[1], secrets_file)
    url = users.operator_url if who == "operator" else users.for_agent(who)
    with connect(url) as client:
        assert client.ping()
    _escalations_refused(url)
    with connect(own_server, password=read_secrets(secrets_file)["default"]) as root:
        assert root.ping()  # and the server still runs: SHUTDOWN was refused


def test_the_operator_still_does_its_work(
    own_server: str, guarded: tuple[Path, Built], secrets_file: Path
) -> None:
    path, built = guarded
    users = _enable(own_server, built, secrets_file)
    operator = users.operator_url
    root = connect(own_server, password=read_secrets(secrets_file)["default"])
    root.execute_command("ACL", "LOG", "RESET")
    root.xgroup_create("g.in", "echo", id="0", mkstream=True)
    root.xadd("guarded.dlq.echo", _letter(b'{"text": "again"}'))

    lines = "".join(json.dumps({"text": text}) + "\n" for text in "abcd")
    sent = cli("submit", str(path), "g.in", *_at(operator), stdin=lines)
    assert sent.code == 0 and len(sent.lines) == 4, sent.err
    status = cli("status", str(path), "--format", "json", *_at(operator))
    listed = cli("dlq", "list", str(path), "echo", "--format", "json", *_at(operator))
    redriven = cli("dlq", "redrive", str(path), "echo", *_at(operator))
    trimmed = admin.trim(built.load_spec(), operator)

    assert status.code == 0, status.err
    assert json.loads(status.out)["streams"]["g.in"]["length"] == 4
    assert listed.code == 0 and len(json.loads(listed.out)["dead_letters"]) == 1, listed.err
    assert redriven.code == 0 and "re-drove 1 dead letter" in redriven.out, redriven.err
    assert trimmed == 0  # the echo group has read nothing: trimming must keep everything
    assert root.execute_command("ACL", "LOG") == []  # the server refused the operator nothing
    root.close()


def test_a_locked_server_tells_the_user_what_to_do(
    own_server: str, guarded: tuple[Path, Built], secrets_file: Path
) -> None:
    path, built = guarded
    _enable(own_server, built, secrets_file)
    outcome = cli("status", str(path), "--redis", own_server)
    assert outcome.code == 2
    assert "refused to log us in: it requires a password" in outcome.err
    assert "acl-secrets.json" in outcome.err
    assert "Traceback" not in outcome.err


def test_the_embedded_server_keeps_its_users_and_password_across_restarts(
    tmp_path: Path, embedded_binary: str, guarded: tuple[Path, Built], secrets_file: Path
) -> None:
    info = ensure_server(tmp_path)
    try:
        users = _enable(info.url, guarded[1], secrets_file)
        assert not users.locked_default  # it never had a password-less default
        assert users.saved
        stop_server(tmp_path)
        restarted = ensure_server(tmp_path)
        _refused_as_default(restarted.port)
        with connect(users.for_agent("echo")) as echo:  # saved, so still there
            assert echo.ping()
        _escalations_refused(users.for_agent("echo"))
    finally:
        stop_server(tmp_path)


def _at(url: str) -> list[str]:
    return ["--redis", url]


def _letter(data: bytes) -> dict[str, Any]:
    return {
        "data": data,
        "trace": "0-1",
        "parent": "",
        "agent": "feed",
        "attempt": "3",
        "error": "handler failed",
        "source_stream": "g.in",
        "source_id": "0-1",
        "deliveries": "3",
    }
