"""What the tests of several folders (end to end, attacks) share: ``meshc`` run in
this process with its exit code and output captured, and polling for a condition."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

import orjson
from meshc.cli import main


@dataclass(frozen=True)
class Outcome:
    """What a command did: exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json_lines(self) -> list[Any]:
        return [orjson.loads(line) for line in self.lines]


def cli(*args: str, stdin: str = "") -> Outcome:
    """Run ``meshc ARGS`` in this process (fast: no interpreter start) and capture it."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock.patch("sys.stdin", io.StringIO(stdin)),
    ):
        code = main(list(args))
    return Outcome(code, out.getvalue(), err.getvalue())


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        time.sleep(0.05)
