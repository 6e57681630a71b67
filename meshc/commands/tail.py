"""``meshc tail FILE STREAM``: print a stream's entries as JSON lines.

Each line is ``{"id", "trace", "parent", "agent", "attempt", "data"}``. Without
``--follow`` it prints what the stream holds now and stops; with it, it keeps printing
new entries until Ctrl-C. Reading does not consume: tailing never takes work from an
agent's consumer group.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import orjson
from meshc.commands.common import (
    add_mesh_options,
    fail,
    guarded,
    load,
    server_url,
    unknown_stream,
)
from meshc.ops.client import MeshClient
from meshc.runtime import cluster

NAME = "tail"
ENTRY_ID = re.compile(r"\d+(-\d+)?")


def register(sub: Any) -> None:
    p = sub.add_parser("tail", help="print a stream's entries as JSON lines", description=__doc__)
    add_mesh_options(p)
    p.add_argument("stream", metavar="STREAM", help="any stream of the mesh")
    p.add_argument(
        "--from",
        dest="start",
        default="0",
        metavar="0|$|ID",
        help="0: every entry (default); $: only new ones; ID: those after that entry",
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new entries")
    p.add_argument("--count", "-n", type=int, metavar="N", help="stop after N entries")
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    if args.start != "$" and not ENTRY_ID.fullmatch(args.start):
        return fail(NAME, f"--from {args.start!r}: use 0, $ or an entry id (1700000000000-0)", 2)
    if args.count is not None and args.count < 1:
        return fail(NAME, "--count must be at least 1", 2)
    _, spec = load(args.file)
    if args.stream not in spec.streams:
        return fail(NAME, unknown_stream(spec, args.stream), 2)
    url = cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis)
    with MeshClient(spec, url) as client:
        printed = 0
        try:
            for entry in client.tail(args.stream, from_id=args.start, follow=args.follow):
                sys.stdout.write(orjson.dumps(entry).decode() + "\n")
                if args.follow:
                    sys.stdout.flush()
                printed += 1
                if printed == args.count:
                    break
        except KeyboardInterrupt:
            if not args.follow:
                raise
    return 0
