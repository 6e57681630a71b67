"""``meshc replay FILE AGENT --from ID|TIME [--to ID|TIME]``: run one agent again over
retained entries of its input.

The entries go through a fresh consumer group (the agent's live group is untouched)
and a worker of the agent built from FILE, so the outputs go where the mesh says, by
the normal commit path (retries and dead letters included). ``--dry-run`` only counts
what the range holds. The group is removed at the end. A range outside what the
stream retains is refused with what it does retain. Exit codes: 0 replayed (or
counted), 1 refused or failed, 2 usage errors.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import orjson
from meshc.commands.common import add_mesh_options, fail, guarded, load, server_url
from meshc.ops.replay import ReplayError, measure, replay
from meshc.runtime.connect import connect

NAME = "replay"


def register(sub: Any) -> None:
    p = sub.add_parser(
        NAME,
        help="run one agent again over retained entries of its input",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_mesh_options(p)
    p.add_argument("agent", metavar="AGENT", help="the agent to run again")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="ID|TIME",
        help="the first entry: an entry id (1796204630809-0) or a time (2026-12-02T09:43:00Z)",
    )
    p.add_argument(
        "--to", dest="end", metavar="ID|TIME", help="the last entry (default: the newest now)"
    )
    p.add_argument("--dry-run", action="store_true", help="count the entries, run nothing")
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="the result as text or JSON"
    )
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    built, spec = load(args.file, resolve=not args.dry_run)
    url = server_url(args.redis)
    with connect(url) as client:
        try:
            rng = measure(client, spec, args.agent, args.start, args.end)
        except ReplayError as err:
            return fail(NAME, str(err), 1)
        outputs = ", ".join(spec.agents[args.agent].writes) or "no stream"
        where = ", ".join(f"{k} {n}" for k, n in rng.counts.items())
        head = {"agent": args.agent, "entries": rng.total, "by_key": rng.counts}
        if args.dry_run:
            _print(args.format, head, f"would replay {rng.total} entries ({where}) "
                   f"through {args.agent} into {outputs}")  # fmt: skip
            return 0
        module = importlib.import_module(f"{built.package}.agents.{args.agent}")
        figures = replay(client, url, spec, args.agent, getattr(module, "handler", None), rng)
    _print(args.format, {**head, **figures}, (
        f"replayed {rng.total} entries ({where}) through {args.agent} into {outputs}: "
        f"{figures['committed']} committed, {figures['failed']} failed calls, "
        f"{figures['dead_lettered']} dead-lettered; the replay group is removed"
    ))  # fmt: skip
    return 0


def _print(fmt: str, data: dict[str, Any], line: str) -> None:
    print(orjson.dumps(data).decode() if fmt == "json" else line)
