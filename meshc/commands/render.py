"""``meshc render FILE --format …``: diagrams and a report from the validated model.

The diagram goes to stdout (or ``-o PATH``); diagnostics go to stderr so that
``meshc render m.yaml > m.mmd`` never mixes the two. An invalid mesh is not drawn.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from meshc.api import analyze_file
from meshc.codegen.writer import write_file
from meshc.commands.common import REDIS_HELP, guarded, load, server_url
from meshc.commands.output import COLORS, can_encode, cannot_open, emit
from meshc.ops.live import read_live
from meshc.render import FORMATS, GraphvizError, LiveStats, render

DESCRIPTION = (
    "Draw a valid mesh: a Mermaid flowchart or sequence diagram, Graphviz DOT, SVG or "
    "PNG, a self-contained HTML report, a tree for the terminal, or an AsyncAPI 3.0.0 "
    "document of its streams (YAML; JSON with --json or -o PATH.json). The drawing goes "
    "to stdout (or -o PATH), diagnostics to stderr; an invalid mesh is not drawn (exit 1). "
    "--live adds stream lengths, group lag and pending, and dead letters from the server."
)


def register(sub: Any) -> None:
    p = sub.add_parser("render", help="draw a mesh (Mermaid, DOT, SVG, PNG, HTML, text, AsyncAPI)",
                       description=DESCRIPTION)  # fmt: skip
    p.add_argument("file", metavar="FILE", help="mesh file (YAML)")
    p.add_argument("--format", choices=FORMATS, default="mermaid", help="default: mermaid")
    p.add_argument("-o", "--output", metavar="PATH", help="write here (required for png)")
    p.add_argument("--live", action="store_true", help="annotate lengths, lag, pending, DLQ")
    p.add_argument("--redis", metavar="URL", help=f"for --live: {REDIS_HELP}")
    p.add_argument("--ascii", action="store_true", help="plain ASCII tree for --format text")
    p.add_argument("--json", action="store_true",
                   help="--format asyncapi as JSON (also chosen by -o PATH.json)")  # fmt: skip
    p.add_argument("--color", choices=COLORS, default="auto",
                   help="colour in diagnostics")  # fmt: skip
    p.add_argument(
        "--dpi",
        type=int,
        metavar="N",
        help="PNG resolution in pixels per inch (default 96; 192 for a sharp picture)",
    )
    p.add_argument(
        "--size",
        type=_box,
        metavar="WxH",
        help="PNG scaled up or down to fit W×H pixels, its proportions kept (e.g. 1600x900)",
    )
    p.set_defaults(handler=guarded("render", run))


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        return _fail(problem, 2)
    try:
        analysis = analyze_file(args.file)
    except OSError as err:
        return cannot_open(args.file, err)
    if analysis.diagnostics:
        emit([analysis], "text", args.color, out=sys.stderr)
    if not analysis.ok or analysis.core is None:
        return 1
    live = _live(args.file, args.redis) if args.live else None
    ascii = args.ascii or (not args.output and not can_encode(sys.stdout, "└│├"))
    try:
        as_json = args.json or (args.output or "").lower().endswith(".json")
        out = render(
            analysis.core,
            args.format,
            diagnostics=analysis.diagnostics,
            live=live,
            ascii=ascii,
            as_json=as_json,
            dpi=args.dpi,
            size=args.size,
        )
    except GraphvizError as err:
        return _fail(f"meshc render: {err}", 1)
    return _write(out, args.output)


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.format == "png" and not args.output:
        return "meshc render: png is binary: give -o PATH"
    if args.redis and not args.live:
        return "meshc render: --redis is used with --live only"
    if args.live and args.format in ("sequence", "asyncapi"):
        return "meshc render: --live annotates the flowchart, dot, svg, png, html and text views"
    if args.json and args.format != "asyncapi":
        return "meshc render: --json is for --format asyncapi"
    if (args.dpi is not None or args.size is not None) and args.format != "png":
        return "meshc render: --dpi and --size are for --format png"
    if args.dpi is not None and not 10 <= args.dpi <= 2400:
        return "meshc render: --dpi takes 10 to 2400 pixels per inch"
    return None


def _live(file: str, redis_url: str | None) -> LiveStats:
    """The mesh's figures on the server, read as ``meshc status`` reads them (from the
    compiled mesh, so both name the same keys). The server is found as every command
    finds it; none running is a usage error (exit 2), raised for ``guarded``."""
    url = server_url(redis_url)
    _, spec = load(file)
    return read_live(spec, url)


def _box(text: str) -> tuple[int, int]:
    """``1600x900`` → (1600, 900); argparse turns the ValueError into a usage error."""
    match = re.fullmatch(r"(\d+)[x×](\d+)", text.strip())
    if not match or min(int(match[1]), int(match[2])) < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT in pixels, e.g. 1600x900")
    return int(match[1]), int(match[2])


def _write(out: str | bytes, path: str | None) -> int:
    if path is None:
        # png never gets here (it needs -o), so stdout only ever carries text.
        sys.stdout.write(out if isinstance(out, str) else out.decode("utf-8", "replace"))
        sys.stdout.flush()
        return 0
    data = out.encode("utf-8") if isinstance(out, str) else out
    try:
        write_file(Path(path), data, parents=False)
    except OSError as err:
        return _fail(f"{path}: error: cannot write: {err.strerror or err}", 2)
    print(f"meshc render: wrote {path}", file=sys.stderr)
    return 0


def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code
