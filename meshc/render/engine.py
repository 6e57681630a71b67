"""Run Graphviz on DOT text: the system ``dot`` when installed, else ``graphviz-pure``.

``graphviz-pure`` is a pip dependency of meshc with ``dot``'s command line, so SVG and
PNG work without system packages; a system Graphviz is preferred when present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

TIMEOUT = 60.0


class GraphvizError(Exception):
    """Raised when no Graphviz executable is found, or it fails on our DOT."""


def graphviz_command() -> str:
    """The path of ``dot``, else of ``graphviz-pure`` (on PATH or beside this Python)."""
    for name in ("dot", "graphviz-pure"):
        found = shutil.which(name)
        if found:
            return found
    beside = os.path.join(os.path.dirname(sys.executable), "graphviz-pure")
    if os.access(beside, os.X_OK):
        return beside
    raise GraphvizError(
        "Graphviz is needed for svg, png and html: install the `graphviz-pure` pip "
        "package (a dependency of meshc) or Debian's `graphviz` (the `dot` command)"
    )


def run_graphviz(source: str, fmt: str) -> bytes:
    """``dot -T<fmt>`` on ``source``; fmt is one of svg, png, json, plain."""
    command = graphviz_command()
    try:
        done = subprocess.run(
            [command, f"-T{fmt}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GraphvizError(f"{command} -T{fmt} failed: {err}") from err
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise GraphvizError(f"{command} -T{fmt} failed: {message}")
    return done.stdout
