"""``meshc trim FILE``: apply every stream's retention (``maxlen``, ``max_age``) once.

Nothing a consumer group has not finished is removed: a trim stops at the oldest
entry some group holds pending or has not read yet, and at every entry of a stream
whose reading agent has not created its group. Per stream it reports the length
before and after, what it removed, and what held it back. ``--dry-run`` measures the
same without removing anything. ``meshc run`` does this in the background.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from meshc.commands.common import add_mesh_options, guarded, load, server_url
from meshc.runtime import cluster
from meshc.runtime.retention import format_trim, trim_report


def register(sub: Any) -> None:
    p = sub.add_parser("trim", help="apply the streams' retention once", description=__doc__)
    add_mesh_options(p)
    p.add_argument("--dry-run", action="store_true", help="report what would go; remove nothing")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.set_defaults(handler=guarded("trim", run))


def run(args: argparse.Namespace) -> int:
    _, spec = load(args.file)
    url = cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis)
    reports = trim_report(spec, url, dry_run=args.dry_run)
    if args.format == "json":
        streams = [t.to_json() for t in reports]
        doc = {"mesh": spec.name, "dry_run": args.dry_run, "streams": streams}
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(format_trim(reports, args.dry_run))
    return 0
