"""``meshc validate FILE…``: every check, every problem at once."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from meshc import __version__, codes
from meshc.api import Analysis, analyze_file
from meshc.diagnostics import (
    format_json,
    format_sarif,
    format_summary,
    format_text,
    sort_diagnostics,
)
from meshc.source import Limits


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check mesh files", description=__doc__)
    p.add_argument("files", nargs="*", metavar="FILE", help="mesh files (YAML)")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--strict", action="store_true", help="warnings make the exit code 1")
    p.add_argument("--resolve", action="store_true", help="import and check handlers")
    p.add_argument("--explain", metavar="CODE", help="explain a diagnostic code and exit")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--max-bytes", type=int, default=Limits().max_bytes, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def use_color(choice: str, stream: Any) -> bool:
    if choice != "auto":
        return choice == "always"
    return bool(stream.isatty()) and "NO_COLOR" not in os.environ


def run(args: argparse.Namespace) -> int:
    if args.explain:
        text = codes.explain(args.explain)
        if text is None:
            print(
                f"meshc: unknown code {args.explain!r}; codes: " + ", ".join(codes.REGISTRY),
                file=sys.stderr,
            )
            return 2
        print(text, end="")
        return 0
    if not args.files:
        print("meshc validate: give at least one FILE (or --explain CODE)", file=sys.stderr)
        return 2
    analyses, worst = [], 0
    for path in args.files:
        try:
            analyses.append(
                analyze_file(path, resolve=args.resolve, limits=Limits(max_bytes=args.max_bytes))
            )
        except OSError as err:
            print(f"{path}: error: cannot open: {err.strerror or err}", file=sys.stderr)
            worst = 2
    emit(analyses, args)
    for a in analyses:
        failed = any(d.is_error for d in a.diagnostics) or (args.strict and a.diagnostics)
        worst = max(worst, 1 if failed else 0)
    return worst


def emit(analyses: list[Analysis], args: argparse.Namespace) -> None:
    diags = sort_diagnostics(d for a in analyses for d in a.diagnostics)
    if args.format == "json":
        print(format_json([a.source.path for a in analyses], diags))
        return
    if args.format == "sarif":
        print(format_sarif(diags, codes.rules(), __version__))
        return
    sources = {a.source.path: a.source for a in analyses}
    color = use_color(args.color, sys.stdout)

    def line_of(file: str, number: int) -> str:
        src = sources.get(file)
        return src.line(number) if src else ""

    for d in diags:
        print(format_text(d, line_of, color=color))
    if analyses:
        print(format_summary(diags, len(analyses)), file=sys.stderr)
