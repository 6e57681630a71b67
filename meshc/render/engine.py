"""Run Graphviz on DOT text: the system ``dot`` when installed, else ``graphviz-pure``.

``graphviz-pure`` is a pip dependency of meshc with ``dot``'s command line, so SVG and
PNG work without system packages; a system Graphviz is preferred when present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from meshc.extras import install_hint

TIMEOUT = 60.0
DEFAULT_DPI = 96  # Graphviz's own default: a picture's natural size in pixels


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
        "svg, png and html need Graphviz: the `render` extra (graphviz-pure), "
        f"{install_hint('render')}, or Debian's `graphviz` (the `dot` command)"
    )


def picture_attributes(
    dpi: int | None = None, size: tuple[int, int] | None = None
) -> dict[str, str]:
    """Graph attributes for a PNG of ``dpi`` pixels per inch, scaled up or down to fit
    ``size`` (width, height) pixels with its proportions kept; Graphviz counts sizes in
    inches, so the box is divided by the resolution."""
    attrs: dict[str, str] = {}
    if dpi is not None:
        attrs["dpi"] = str(dpi)
    if size is not None:
        per_inch = dpi or DEFAULT_DPI
        attrs["size"] = f"{size[0] / per_inch:g},{size[1] / per_inch:g}!"
    return attrs


def run_graphviz(source: str, fmt: str, attributes: dict[str, str] | None = None) -> bytes:
    """``dot -T<fmt>`` on ``source``; fmt is one of svg, png, json, plain. ``attributes``
    are graph attributes given on the command line (``-Gdpi=150``)."""
    command = graphviz_command()
    graph = [f"-G{key}={value}" for key, value in sorted((attributes or {}).items())]
    try:
        done = subprocess.run(
            [command, f"-T{fmt}", *graph],
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
