"""Attacks on the worker processes of ``meshc run --acl`` from the same machine.

Each worker's secret (its server URL with its password) must be nowhere another
process can read it: not in its environment (``/proc/PID/environ``), not on its
command line (``/proc/PID/cmdline``, which every local user can read); and the secrets
the operator's shell holds (ACL passwords, REDIS_URL, the gateway's tokens) must not
be inherited. And a ``meshc run`` killed with SIGKILL, which cannot forward anything,
must leave no worker behind, running unsupervised with its credentials.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from e2e_kit import cli, wait_for, write_mesh
from meshc.ops.acl import with_credentials

MESH = """\
    mesh: hushed
    version: 1
    types:
      Line: {text: str}
    streams:
      h.in: {type: Line}
      h.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [h.in]}
      echo: {role: specialist, reads: [h.in], writes: [h.out], handler: hushed_handlers:echo}
"""
HANDLERS = """\
    def echo(payload, ctx):
        return {"text": payload.text[::-1]}
"""
OPERATOR_SECRET = "operator-secret-0123456789"
TOKENS = "gateway-token-0123456789"


def _proc(pid: int, what: str) -> bytes:
    return Path(f"/proc/{pid}/{what}").read_bytes()


def _alive(pid: int) -> bool:
    try:
        state = _proc(pid, "stat").decode().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_worker_secrets_are_unreadable_and_workers_die_with_meshc_run(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "hushed", MESH, HANDLERS))
    log = workdir / "run.log"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"MESHC_ACL_PASSWORD_HUSHED_OPERATOR": OPERATOR_SECRET, "MESHC_SERVE_TOKENS": TOKENS}
    with open(log, "wb") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", mesh, "--acl"], cwd=workdir, env=env, stderr=err
        )
    try:
        wait_for(lambda: "all 1 workers ready" in log.read_text(), 60, "the worker")
        match = re.search(r"worker echo \(pid (\d+)\) started", log.read_text())
        assert match is not None
        pid = int(match.group(1))
        secrets = orjson.loads((workdir / ".meshc" / "acl-secrets.json").read_bytes())
        server = orjson.loads((workdir / ".meshc" / "server.json").read_bytes())["url"]
        server_pass = (workdir / ".meshc" / "server.pass").read_text().strip()
        exposed = _proc(pid, "environ") + _proc(pid, "cmdline")
        for secret in [*secrets.values(), OPERATOR_SECRET, TOKENS, server_pass]:
            assert secret.encode() not in exposed
        names = {line.split(b"=", 1)[0] for line in _proc(pid, "environ").split(b"\0")}
        assert b"MESHC_SECRET_STDIN" in names  # its URL came on stdin instead
        assert not {b"REDIS_URL", b"MESHC_SERVE_TOKENS", b"MESHC_WORKER_URL"} & names
        assert not [n for n in names if n.startswith(b"MESHC_ACL_PASSWORD_")]

        operator = with_credentials(server, "hushed.operator", OPERATOR_SECRET)
        assert (
            cli("submit", mesh, "h.in", "--json", '{"text": "abc"}', "--redis", operator).code == 0
        )
        wait_for(lambda: cli("tail", mesh, "h.out", "--redis", operator).lines != [], 30, "echo")

        run.send_signal(signal.SIGKILL)  # nothing is forwarded: the kernel tells the worker
        run.wait(30)
        wait_for(lambda: not _alive(pid), 30, "the worker to die with its supervisor")
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
            run.wait(30)
