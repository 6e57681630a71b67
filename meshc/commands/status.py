"""``meshc status FILE``: per stream and group, length, lag, pending and consumers;
per agent, dead letters and (aggregators) late partials.

A reading agent whose consumer group does not exist yet shows as "no group yet" with
everything in its stream as lag, so an agent that never started is visible.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from meshc.commands.common import add_mesh_options, guarded, load, server_url
from meshc.ops.admin import format_status, status
from meshc.runtime import cluster


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="lengths, lag, pending, dead letters", description=__doc__)
    add_mesh_options(p)
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="a table (default) or JSON"
    )
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.set_defaults(handler=guarded("status", run))


def run(args: argparse.Namespace) -> int:
    _, spec = load(args.file)
    report = status(spec, cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis))
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_status(report))
    return 0
