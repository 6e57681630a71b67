"""``meshc run``: workers as processes, supervised; a killed worker comes back."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
import redis
from e2e_kit import cli, wait_for, write_mesh
from meshc.ops.acl import with_credentials

MESH = """\
    mesh: echoes
    version: 1
    types:
      Line: {text: str}
    streams:
      e.in: {type: Line}
      e.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [e.in]}
      echo: {role: specialist, reads: [e.in], writes: [e.out], handler: echoes_handlers:echo}
"""
HANDLERS = """\
    def echo(payload, ctx):
        return {"text": payload.text[::-1]}
"""


def test_run_restarts_a_killed_worker_and_reports_it(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "echoes", MESH, HANDLERS))
    log = workdir / "run.log"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(log, "wb") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", mesh], cwd=workdir, env=env, stderr=err
        )
    try:
        started = re.compile(r"worker echo \(pid (\d+)\) started")
        wait_for(lambda: bool(started.search(log.read_text())), what="the worker starts")
        match = started.search(log.read_text())
        assert match is not None
        os.kill(int(match.group(1)), signal.SIGKILL)
        wait_for(lambda: "restarted (restart #1)" in log.read_text(), what="a restart")
        assert f"worker echo (pid {match.group(1)}) killed by SIGKILL" in log.read_text()

        done = cli("submit", mesh, "e.in", "--json", '{"text": "abc"}')
        assert done.code == 0, done.err
        wait_for(lambda: cli("tail", mesh, "e.out").lines != [], what="the restarted worker")
        assert cli("tail", mesh, "e.out").json_lines()[0]["data"] == {"text": "cba"}
        _follow(mesh, workdir, env)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(30)
    assert run.returncode == 0, log.read_text()
    text = log.read_text()
    assert "worker echo" in text and "stopped" in text and "Traceback" not in text


def test_run_with_acl_runs_each_agent_as_its_own_user(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "echoes", MESH, HANDLERS))
    log = workdir / "run-acl.log"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(log, "wb") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", mesh, "--acl"], cwd=workdir, env=env, stderr=err
        )
    try:
        wait_for(lambda: "worker echo (pid" in log.read_text(), what="the worker starts")
        assert "ACLs on" in log.read_text() and "echoes.operator" in log.read_text()
        secrets = orjson.loads((workdir / ".meshc" / "acl-secrets.json").read_bytes())
        assert sorted(secrets) == ["echoes.echo", "echoes.feed", "echoes.operator"]
        server = orjson.loads((workdir / ".meshc" / "server.json").read_bytes())["url"]
        operator = with_credentials(server, "echoes.operator", secrets["echoes.operator"])
        done = cli("submit", mesh, "e.in", "--json", '{"text": "abc"}', "--redis", operator)
        assert done.code == 0, done.err
        wait_for(
            lambda: cli("tail", mesh, "e.out", "--redis", operator).lines != [],
            what="the echo worker, logged in as its own user",
        )
        out = cli("tail", mesh, "e.out", "--redis", operator).json_lines()
        assert out[0]["data"] == {"text": "cba"}
        for password in secrets.values():
            assert password not in log.read_text()
        port = int(server.rsplit(":", 1)[1])
        with pytest.raises(redis.AuthenticationError):  # default: no way around the users
            redis.Redis(port=port).ping()
        echo = redis.Redis.from_url(with_credentials(server, "echoes.echo", secrets["echoes.echo"]))
        with pytest.raises(redis.exceptions.NoPermissionError):
            echo.execute_command("ACL", "SETUSER", "echoes.echo", "+@all", "~*")
        echo.close()
        status = cli("status", mesh, "--redis", operator)
        assert status.code == 0 and "e.in" in status.out, status.err
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(30)
    assert run.returncode == 0, log.read_text()


def _follow(mesh: str, workdir: Path, env: dict[str, str]) -> None:
    """``tail --follow`` prints what is there, then new entries; Ctrl-C ends it with 0."""
    argv = [sys.executable, "-m", "meshc", "tail", mesh, "e.out", "--follow"]
    follower = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in follower.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert orjson.loads(lines.get(timeout=30))["data"] == {"text": "cba"}
        assert cli("submit", mesh, "e.in", "--json", '{"text": "xyz"}').code == 0
        assert orjson.loads(lines.get(timeout=30))["data"] == {"text": "zyx"}
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(30)
        reader.join(30)
    assert follower.returncode == 0
