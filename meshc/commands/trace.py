"""``meshc trace FILE TRACE``: the path of one task, read from the streams.

Prints every hop of the task (agent, input and output entries, attempt, when each
entry was written, time waiting and time in the handler), then where it ended: its
result, a dead letter with its error, a join that timed out, or the entries still in
flight (who holds them). TRACE is what ``meshc submit`` printed (the second word),
or the entry id of a task an outside producer wrote with ``data`` alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshc.commands.common import add_mesh_options, fail, guarded, load, server_url
from meshc.commands.output import can_encode, use_color
from meshc.model import parse_duration
from meshc.ops.trace import ENTRY_ID, LIMIT, read_trace, server_ms
from meshc.ops.trace_view import as_json, mermaid, tree
from meshc.runtime import cluster
from meshc.runtime.connect import connect

NAME = "trace"
FORMATS = ("tree", "json", "mermaid")
SINCE_FORMS = "give an entry id (1700000000000-0), a Unix time in ms, or a duration (15m)"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trace", help="the path of one task through the streams", description=__doc__
    )
    add_mesh_options(p)
    p.add_argument("trace", metavar="TRACE", help="the task's trace (meshc submit prints it)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="tree",
        help="tree (default), json, or a Mermaid sequence diagram",
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="look back to here for the task: an entry id, a Unix time in ms, or a "
        "duration ago (15m, 2h); default: the whole intake, newest first",
    )
    p.add_argument(
        "--window",
        metavar="DURATION",
        default="1h",
        help="follow the task this long after its first entry (default 1h)",
    )
    p.add_argument(
        "--max-entries",
        type=int,
        default=LIMIT,
        metavar="N",
        help=f"read at most N stream entries in all (default {LIMIT:,})",
    )
    p.add_argument("--ascii", action="store_true", help="plain ASCII tree")
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    window = _window(args.window)
    if window is None:
        return fail(NAME, f"--window {args.window!r}: give a duration such as 30s, 10m or 2h", 2)
    if args.max_entries < 1:
        return fail(NAME, "--max-entries must be at least 1", 2)
    if not args.trace.strip():
        return fail(NAME, "TRACE is empty: give the trace meshc submit printed", 2)
    _, spec = load(args.file)
    client = connect(cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis))
    try:
        since = _since(args.since, client) if args.since else None
        if args.since and since is None:
            return fail(NAME, f"--since {args.since!r}: {SINCE_FORMS}", 2)
        found = read_trace(
            client, spec, args.trace.strip(), since=since, window_ms=window, limit=args.max_entries
        )
    finally:
        client.close()
    if args.format == "json":
        sys.stdout.write(as_json(found))
    elif args.format == "mermaid":
        sys.stdout.write(mermaid(found))
    else:
        ascii = args.ascii or not can_encode(sys.stdout, "└│├")
        sys.stdout.write(tree(found, color=use_color(args.color, sys.stdout), ascii=ascii))
    return 0


def _window(text: str) -> int | None:
    try:
        return int(parse_duration(text) * 1000)
    except ValueError:
        return None


def _since(text: str, client: Any) -> str | None:
    """An entry id as it is, ms as ``ms-0``, a duration as that long before the
    server's clock (entry ids come from it); None when it is none of these."""
    text = text.strip()
    if ENTRY_ID.match(text):
        return text
    if text.isdigit():
        return f"{text}-0"
    try:
        seconds = parse_duration(text)
    except ValueError:
        return None
    return f"{max(0, server_ms(client) - int(seconds * 1000))}-0"
