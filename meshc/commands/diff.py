"""``meshc diff OLD NEW``: what changing a running mesh from OLD to NEW does.

Every change (agents, streams, lane families, message types, joins, policy, handlers,
LLM settings) is classified for a mesh that runs OLD: safe (applies while it runs),
restart (named agents must be restarted, started or stopped, in the order given), or
breaks (work already in the streams or in a join would be refused, lost or done
twice). With a server (``--redis``, REDIS_URL, or this folder's embedded server when
it runs) the findings that depend on what it holds are settled by reading it;
without one they are reported at their worst, with the condition they depend on.

Exit codes: 0 when everything is safe or needs only restarts, 1 when something
breaks in-flight work (or may, with no server to say otherwise) or a file is not a
valid mesh (its diagnostics are printed), 2 on usage errors or a file that cannot be
opened.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshc.api import Analysis, analyze_file
from meshc.commands.common import REDIS_HELP, guarded, server_url
from meshc.commands.output import add_color_option, cannot_open, emit, use_color
from meshc.diff import diff_meshes, finish
from meshc.diff.findings import Report
from meshc.diff.output import format_json, format_markdown, format_text
from meshc.ops.diff_facts import Facts, settle
from meshc.runtime import cluster
from meshc.runtime.connect import redact, using
from meshc.runtime.process.server import ServerNotRunning


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="what changing a running mesh to another version does",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", metavar="OLD", help="the mesh file that runs now")
    p.add_argument("new", metavar="NEW", help="the mesh file to change to")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--redis", metavar="URL", help=REDIS_HELP + " (when it runs)")
    where.add_argument("--offline", action="store_true", help="read no server, even if one runs")
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="text (grouped by section), json (stable schema) or markdown (a PR comment)",
    )
    add_color_option(p)
    p.set_defaults(handler=guarded("diff", run))


def run(args: argparse.Namespace) -> int:
    analyses: list[Analysis] = []
    unreadable = 0
    for path in (args.old, args.new):
        try:
            analyses.append(analyze_file(path))
        except OSError as err:
            unreadable = cannot_open(path, err)
    if unreadable:
        return unreadable
    invalid = [a for a in analyses if not a.ok]
    if invalid:
        emit(invalid, "json" if args.format == "json" else "text", args.color)
        return 1
    old, new = (a.core for a in analyses)
    assert old is not None and new is not None
    report = diff_meshes(old, new, args.old, args.new)
    url = None if args.offline else _server(args)
    if url is not None:
        with using(url) as r:
            report = settle(report, Facts(r, old))
        report.server = redact(url)
        report = finish(report, old, new)
    print(_render(report, args.format, args.color))
    return report.exit_code


def _server(args: argparse.Namespace) -> str | None:
    """The server to read, or None when none is given and the embedded one is not running."""
    try:
        return cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis)
    except ServerNotRunning:
        return None


def _render(report: Report, fmt: str, color: str) -> str:
    if fmt == "json":
        return format_json(report)
    if fmt == "markdown":
        return format_markdown(report)
    return format_text(report, use_color(color, sys.stdout))
