"""What the attack tests share: the mesh they guard, a second local user running a
stdlib-only script, and a raw RESP connection that sends exactly what it is told."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MESH = """\
    mesh: guarded
    version: 1
    types:
      Line: {text: str}
    streams:
      g.in: {type: Line, retention: {maxlen: 2}}
      g.out: {type: Line, terminal: true, retention: {maxlen: 2}}
    agents:
      feed: {role: producer, writes: [g.in]}
      echo: {role: specialist, reads: [g.in], writes: [g.out], handler: guarded_handlers:echo}
"""


@dataclass(frozen=True)
class OtherUser:
    """A second local account, and a way to run a stdlib-only script as it."""

    name: str
    uid: int
    gid: int
    python: str  # an interpreter that account may run (not one under /root)

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-I", "-S", "-c", textwrap.dedent(script), *args],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def python_for_anyone() -> str | None:
    """This interpreter, or the system's, if every local user may run it."""
    for candidate in (os.path.realpath(sys.executable), "/usr/bin/python3"):
        path = Path(os.path.realpath(candidate))
        if path.is_file() and all(p.stat().st_mode & 0o001 for p in [path, *path.parents]):
            return str(path)
    return None


def resp(port: int, *commands: list[str]) -> list[str]:
    """Send commands on one raw connection (no client library, no AUTH of its own);
    the first line of each reply."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for words in commands:
            frame = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
            sock.sendall(frame.encode())
            replies.append(reader.readline().decode().strip())
    return replies


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def denied(reply: Any) -> bool:
    """A permission refusal as Valkey 9 and Redis 7.0 word it."""
    text = str(reply).lower()
    return any(
        m in text for m in ("noperm", "no permissions", "acl failure", "can't access", "can't run")
    )
