"""A mesh whose handlers do not resolve never starts: ``meshc run`` and the compiled
package both say which handler is wrong and exit 1, instead of crash-looping workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_kit import build, cli, meshc_process, write_mesh
from meshc.runtime.process.preflight import unresolved_handlers

MESH = """\
    mesh: typos
    version: 1
    types:
      Line: {text: str}
    streams:
      t.in: {type: Line}
      t.mid: {type: Line}
      t.low: {type: Line}
      t.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [t.in]}
      first: {role: specialist, reads: [t.in], writes: [t.mid], handler: no_such_pkg.mod:run}
      second: {role: specialist, reads: [t.mid], writes: [t.low], handler: typos_handlers:nope}
      third: {role: specialist, reads: [t.low], writes: [t.out], handler: typos_handlers:CONST}
"""
HANDLERS = """\
    print("importing typos_handlers")  # must not reach stdout of the check
    CONST = 3

    def run(payload, ctx):
        return payload
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


def test_run_refuses_a_mesh_whose_handler_does_not_import(workdir: Path) -> None:
    mesh = write_mesh(workdir, "typos", MESH, HANDLERS)
    done = meshc_process("run", str(mesh), cwd=workdir, timeout=60)
    report = done.out + done.err  # the diagnostics, then the count of errors
    assert done.code == 1, report
    assert "[MESH301]" in report and "no_such_pkg.mod" in report
    assert "module `typos_handlers` has no attribute `nope`" in report
    assert "[MESH302]" in report  # CONST is not a function
    assert "3 errors" in done.err and "Traceback" not in report
    assert not (workdir / ".meshc" / "server.json").exists(), "no server should start"


def test_run_starts_when_handlers_resolve_after_the_fix(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is no blanket refusal: the same mesh with its handlers fixed passes it."""
    fixed = MESH.replace("no_such_pkg.mod:run", "typos_handlers:run")
    fixed = fixed.replace("typos_handlers:nope", "typos_handlers:run")
    fixed = fixed.replace("typos_handlers:CONST", "typos_handlers:run")
    mesh = write_mesh(workdir, "typos", fixed, HANDLERS)
    _, spec = build(mesh)
    monkeypatch.syspath_prepend(str(workdir))  # as `python -m` puts its folder first
    assert unresolved_handlers(spec) == []


def test_generated_package_refuses_unresolved_handlers(workdir: Path) -> None:
    mesh = write_mesh(workdir, "typos", MESH, HANDLERS)
    out = workdir / "out"
    compiled = cli("compile", str(mesh), "-o", str(out))  # compile does not import handlers
    assert compiled.code == 0, compiled.err
    (out / "typos_handlers.py").write_text((workdir / "typos_handlers.py").read_text())
    proc = subprocess.run(
        [sys.executable, "-m", "typos"],
        cwd=out,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "[MESH301]" in line]
    assert lines == [
        "typos: agent first: handler no_such_pkg.mod:run: module no_such_pkg.mod cannot be "
        "imported (ModuleNotFoundError: No module named 'no_such_pkg'); run from the folder "
        "that holds its package, or add that folder to PYTHONPATH [MESH301]",
        "typos: agent second: handler typos_handlers:nope: module typos_handlers has no "
        "function nope [MESH301]",
        "typos: agent third: handler typos_handlers:CONST: typos_handlers.CONST is an int, "
        "not a function [MESH301]",
    ]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""  # what the handler module printed went to stderr
    assert not (out / ".meshc" / "server.json").exists(), "no server should start"


def test_preflight_reports_what_an_import_raises(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashing = MESH.replace("no_such_pkg.mod:run", "typos_exits:run")
    mesh = write_mesh(workdir, "typos", crashing, HANDLERS)
    (workdir / "typos_exits.py").write_text("raise SystemExit(3)\n")
    _, spec = build(mesh)
    monkeypatch.syspath_prepend(str(workdir))
    problems = unresolved_handlers(spec)
    assert problems[0] == (
        "agent first: handler typos_exits:run: module typos_exits cannot be imported "
        "(SystemExit: 3) [MESH301]"
    )
    assert len(problems) == 3
