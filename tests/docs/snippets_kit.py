"""Fenced blocks of the Markdown docs, and how each is run.

A block runs by its language: ``sh``/``bash`` with bash (``set -eo pipefail``; jobs it
leaves in the background are stopped when it ends), ``python`` with Python, or with
pytest when its first line names a test file (``# tests/test_x.py``). A ``yaml``
block holding a whole mesh (a ``mesh:`` key) must validate. Other blocks (output,
plain text) are not run. An HTML comment on the line before a block changes that:

- ``<!-- skip: reason -->``: not run, for the reason given (which must be there);
- ``<!-- file: PATH -->``: the block is written to PATH for the blocks after it;
- ``<!-- with: COMMAND -->``: COMMAND runs in the background while the block runs;
- ``<!-- output-of: COMMAND -->``: the block is what COMMAND prints, run from the
  repository's top folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOTE = re.compile(r"^<!--\s*(skip|file|with|output-of):\s*(.*?)\s*-->$")
TEST_FILE = re.compile(r"^#\s*(\S*test_\w+\.py)\s*$")
SHELLS = ("sh", "bash")
REFERENCE = ROOT / "docs" / "reference"
TIMEOUT = 180


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    note: str = ""
    arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with the note on the line before it."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        note = NOTE.match(before)
        line = text.count("\n", 0, m.start()) + 1
        kind, arg = (note.group(1), note.group(2)) if note else ("", "")
        found.append(Block(path, line, m.group(1), m.group(2), kind, arg))
    return found


def runnable(block: Block) -> bool:
    """Whether the collector has anything to do with a block."""
    if block.note:
        return True
    if block.lang == "yaml":  # the diagnostics pages show broken meshes on purpose
        return is_mesh(block.code) and REFERENCE not in block.path.parents
    return block.lang in (*SHELLS, "python")


def is_mesh(code: str) -> bool:
    try:
        data = yaml.safe_load(code)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "mesh" in data and "agents" in data


@dataclass
class Runner:
    """Runs the blocks of one file in order, in one working folder."""

    work: Path
    env: dict[str, str]

    def run(self, block: Block) -> None:
        if block.note == "skip":
            assert block.arg, f"{block.where}: a skip needs a reason"
            return
        if block.note == "file":
            target = self.work / block.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
            return
        if block.note == "output-of":
            done = self.shell(block.arg, ROOT)
            printed = (done.stdout + done.stderr).rstrip("\n")
            assert printed == block.code.rstrip("\n"), f"{block.where} differs:\n{printed}"
            return
        with self.background(block.arg if block.note == "with" else ""):
            self.execute(block)

    def execute(self, block: Block) -> None:
        if block.lang in SHELLS:
            script = "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
            done = self.shell(script + block.code, self.work)
        elif block.lang == "python":
            done = self.python(block)
        elif block.lang == "yaml":
            done = self.validate(block)
        else:
            raise AssertionError(f"{block.where}: nothing runs a `{block.lang}` block")
        failed = f"{block.where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        assert done.returncode == 0, failed
        assert "Traceback" not in done.stderr, f"{block.where}:\n{done.stderr}"

    def python(self, block: Block) -> subprocess.CompletedProcess[str]:
        first = block.code.split("\n", 1)[0]
        named = TEST_FILE.match(first)
        target = self.work / (named.group(1) if named else f"snippet_{block.line}.py")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
        if named:
            pytest = ["-m", "pytest", "-q", "-p", "meshc.testing.plugin", "-p", "no:cacheprovider"]
            return self.call([sys.executable, *pytest, str(target)], self.work)
        return self.call([sys.executable, str(target)], self.work)

    def validate(self, block: Block) -> subprocess.CompletedProcess[str]:
        target = self.work / f"mesh_{block.line}.yaml"
        target.write_text(block.code, encoding="utf-8")
        return self.call([sys.executable, "-m", "meshc", "validate", str(target)], self.work)

    def shell(self, script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.call(["bash", "-c", script], cwd)

    def call(self, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=TIMEOUT
        )

    @contextmanager
    def background(self, command: str) -> Iterator[None]:
        """``command`` running for the body of the block (nothing when empty); SIGTERM
        and a wait for it afterwards."""
        if not command:
            yield
            return
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
