"""How commands print: diagnostics (text, JSON, SARIF) and whether to use colour.

Kept apart from ``meshc.commands.common`` so that `meshc validate` starts without
importing the runtime (redis, asyncio).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from meshc import __version__, codes
from meshc.api import Analysis
from meshc.diagnostics import (
    format_json,
    format_sarif,
    format_summary,
    format_text,
    sort_diagnostics,
)

COLORS = ("auto", "always", "never")


def add_color_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color", choices=COLORS, default="auto", help="colour: auto (a terminal), always, never"
    )


def use_color(choice: str, stream: TextIO) -> bool:
    """``always``/``never`` as said; ``auto``: a terminal, no ``NO_COLOR``, not TERM=dumb."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(stream.isatty())


def emit(
    analyses: list[Analysis], fmt: str = "text", color: str = "auto", out: TextIO | None = None
) -> None:
    """Print the diagnostics of ``analyses`` as text (with a summary), JSON or SARIF."""
    out = out or sys.stdout
    diags = sort_diagnostics(d for a in analyses for d in a.diagnostics)
    if fmt == "json":
        print(format_json([a.source.path for a in analyses], diags), file=out)
        return
    if fmt == "sarif":
        print(format_sarif(diags, codes.rules(), __version__), file=out)
        return
    sources = {a.source.path: a.source for a in analyses}
    colored = use_color(color, out)

    def line_of(file: str, number: int) -> str:
        src = sources.get(file)
        return src.line(number) if src else ""

    for d in diags:
        print(format_text(d, line_of, color=colored), file=out)
    if analyses:
        print(format_summary(diags, len(analyses)), file=sys.stderr)


def can_encode(stream: TextIO, sample: str) -> bool:
    """Whether ``stream`` can print ``sample`` (a tree's box-drawing glyphs): a pipe or a
    terminal with an ASCII locale cannot, and gets the ASCII tree instead."""
    try:
        sample.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def cannot_open(path: str, err: OSError) -> int:
    """Report a file that cannot be read; exit code 2."""
    print(f"{path}: error: cannot open: {err.strerror or err}", file=sys.stderr)
    return 2
