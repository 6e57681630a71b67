"""``meshc run -v``: DEBUG logs from the supervisor and from every worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_kit import cli, meshc_process, wait_for, write_mesh

MESH = """\
    mesh: chatty
    version: 1
    types:
      Line: {text: str}
    streams:
      c.in: {type: Line}
      c.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [c.in]}
      echo: {role: specialist, reads: [c.in], writes: [c.out], handler: chatty_handlers:echo}
"""
HANDLERS = """\
    def echo(payload, ctx):
        ctx.log.debug("handler saw %s", payload.text)
        return {"text": payload.text}
"""


def _run(workdir: Path, mesh: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"run{''.join(extra)}.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MESHC_LOG_LEVEL")}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", mesh, *extra], cwd=workdir, env=env, stderr=err
        )
    return proc, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def test_verbose_logs_debug_from_the_supervisor_and_the_workers(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "chatty", MESH, HANDLERS))
    quiet, quiet_log = _run(workdir, mesh)
    try:
        wait_for(lambda: "worker echo (pid" in quiet_log.read_text(), what="the worker starts")
    finally:
        _stop(quiet)
    assert " DEBUG " not in quiet_log.read_text()

    loud, loud_log = _run(workdir, mesh, "-v")
    try:
        wait_for(lambda: "worker echo (pid" in loud_log.read_text(), what="the worker starts")
        assert cli("submit", mesh, "c.in", "--json", '{"text": "hello"}').code == 0
        wait_for(lambda: "handler saw hello" in loud_log.read_text(), what="the handler's log")
    finally:
        _stop(loud)
    text = loud_log.read_text()
    assert loud.returncode == 0, text
    assert "DEBUG meshc.run: worker echo: " in text and ".agents.echo" in text
    assert [line for line in text.splitlines() if "handler saw hello" in line][0].split()[2] == (
        "DEBUG"
    )


def test_a_log_level_that_is_none_is_refused_before_anything_starts(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = str(write_mesh(workdir, "chatty", MESH, HANDLERS))
    monkeypatch.setenv("MESHC_LOG_LEVEL", "loud")  # the process inherits it
    done = meshc_process("run", mesh, cwd=workdir)
    assert done.code == 2
    assert done.err == "meshc run: MESHC_LOG_LEVEL=LOUD: use DEBUG, INFO, WARNING or ERROR\n"
    assert not (workdir / ".meshc" / "server.json").exists()
