"""``meshc validate FILE…``: every check, every problem at once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshc import codes
from meshc.api import analyze_file
from meshc.commands.output import add_color_option, cannot_open, emit
from meshc.source import Limits


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check mesh files", description=__doc__)
    p.add_argument("files", nargs="*", metavar="FILE", help="mesh files (YAML)")
    p.add_argument(
        "--format",
        choices=("text", "json", "sarif"),
        default="text",
        help="text for people (default), JSON or SARIF 2.1.0 for tools",
    )
    p.add_argument("--strict", action="store_true", help="warnings make the exit code 1")
    p.add_argument("--resolve", action="store_true", help="import and check handlers")
    p.add_argument("--explain", metavar="CODE", help="explain a diagnostic code and exit")
    add_color_option(p)
    p.add_argument(
        "--max-bytes",
        type=_positive,
        default=Limits().max_bytes,
        metavar="N",
        help="refuse (MESH004) a file larger than N bytes, unread (default: 64 MiB)",
    )
    p.set_defaults(handler=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a number of bytes above 0, not {text!r}")
    return value


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
            worst = cannot_open(path, err)
    emit(analyses, args.format, args.color)
    for a in analyses:
        failed = any(d.is_error for d in a.diagnostics) or (args.strict and a.diagnostics)
        worst = max(worst, 1 if failed else 0)
    return worst
