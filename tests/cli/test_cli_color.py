"""Colour: every command that prints it takes ``--color``; ``auto`` means a terminal,
no non-empty NO_COLOR, and a TERM other than ``dumb``."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from meshc.cli import main
from meshc.commands.output import COLORS
from parsers_kit import commands

# What prints no colour at all: JSON Schema, server state, a shell script.
PLAIN = {"schema", "server start", "server stop", "server status", "completion"}
BROKEN = """\
mesh: broken
types:
  T: {id: str}
streams:
  s.in: {type: T}
agents:
  p: {role: producer, writes: [s.in]}
  a: {role: sink, reads: [s.nope], handler: m:f}
"""
ESC = "\x1b["


def test_every_command_that_prints_colour_takes_color() -> None:
    found = dict(commands())
    assert "dlq list" in found and "validate" in found and "test" in found
    for name, parser in found.items():
        options = {o: a for a in parser._actions for o in a.option_strings}
        if name.split(" ")[0] in PLAIN or name in PLAIN:
            continue
        assert "--color" in options, f"meshc {name} has no --color"
        action = options["--color"]
        assert tuple(action.choices or ()) == COLORS and action.default == "auto", name
        assert action.help, f"meshc {name} --color has no help"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return path


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``meshc ARGS`` with stdout on a pseudo-terminal; what it printed there."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "meshc", *args],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 1
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    ("env", "colored"),
    [
        ({}, True),
        ({"NO_COLOR": "1"}, False),
        ({"NO_COLOR": ""}, True),  # only a non-empty NO_COLOR counts
        ({"TERM": "dumb"}, False),
    ],
)
def test_auto_follows_the_terminal_and_the_environment(
    broken: Path, env: dict[str, str], colored: bool
) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    out = _on_a_terminal(["validate", str(broken)], {**base, "TERM": "xterm", **env})
    assert "MESH104" in out
    assert (ESC in out) == colored, out


def test_always_and_never_win_over_the_environment(broken: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    out = _on_a_terminal(["validate", str(broken), "--color", "never"], base)
    assert ESC not in out
    out = _on_a_terminal(["validate", str(broken), "--color", "always"], {**base, "NO_COLOR": "1"})
    assert ESC in out


def test_meshc_test_colours_the_diagnostics_of_an_invalid_mesh(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(broken), "--color", "always"]) == 1
    assert ESC in capsys.readouterr().out
    assert main(["test", str(broken), "--color", "never"]) == 1
    out = capsys.readouterr().out
    assert "[MESH104]" in out and ESC not in out
