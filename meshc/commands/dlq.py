"""``meshc dlq list|redrive FILE AGENT``: an agent's dead letters.

A message lands in ``<mesh>.dlq.<agent>`` when its handler failed ``max_deliveries``
times, or at once when its payload does not fit the stream's type. ``list`` shows
them with the error; ``redrive`` puts them back on the streams they came from (all of
them, or those named with ``--id``) once the cause is fixed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import orjson
from meshc.commands.common import add_mesh_options, guarded, load, server_url
from meshc.ops.admin import dlq_list, dlq_redrive


def register(sub: Any) -> None:
    p = sub.add_parser("dlq", help="list or re-drive an agent's dead letters", description=__doc__)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("list", help="show an agent's dead letters, oldest first")
    add_mesh_options(show)
    show.add_argument("agent", metavar="AGENT", help="the agent that dead-lettered them")
    show.add_argument(
        "--count", "-n", type=int, default=100, metavar="N", help="show at most N (default 100)"
    )
    show.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default) or JSON; a payload that is not JSON comes as raw_data",
    )
    show.set_defaults(handler=guarded("dlq list", run_list))
    redo = actions.add_parser("redrive", help="put dead letters back on their source streams")
    add_mesh_options(redo)
    redo.add_argument("agent", metavar="AGENT", help="the agent that dead-lettered them")
    redo.add_argument(
        "--id",
        dest="ids",
        action="extend",
        nargs="+",
        metavar="ID",
        help="only these dead letters (default: all); after FILE AGENT, or repeated",
    )
    redo.set_defaults(handler=guarded("dlq redrive", run_redrive))


def run_list(args: argparse.Namespace) -> int:
    _, spec = load(args.file)
    letters = dlq_list(spec, args.agent, server_url(args.redis), count=max(1, args.count))
    if args.format == "json":
        print(
            json.dumps(
                {"mesh": spec.name, "agent": args.agent, "dead_letters": letters},
                indent=2,
                sort_keys=True,
            )
        )
        return 0
    if not letters:
        print(f"agent {args.agent}: no dead letters")
    for letter in letters:
        print(format_letter(letter))
    return 0


def format_letter(letter: dict[str, Any]) -> str:
    """Three lines: where it came from, why it failed, and its payload (marked when it
    is not JSON: its text, or its bytes in base64)."""
    raw = letter.get("raw_data")
    if raw is None:
        data = orjson.dumps(letter["data"]).decode()
    elif raw["encoding"] == "utf-8":
        data = f"(not JSON, the text as stored) {json.dumps(raw['value'], ensure_ascii=False)}"
    else:
        data = f"(not JSON nor UTF-8, the bytes in base64) {raw['value']}"
    return (
        f"{letter['id']}  from {letter['source_stream']} {letter['source_id']}"
        f"  deliveries {letter['deliveries']}  trace {letter['trace']}\n"
        f"  error: {letter['error']}\n"
        f"  data:  {data}"
    )


def run_redrive(args: argparse.Namespace) -> int:
    _, spec = load(args.file)
    moved = dlq_redrive(spec, args.agent, server_url(args.redis), ids=args.ids)
    noun = "dead letter" if moved == 1 else "dead letters"
    print(f"re-drove {moved} {noun} of {args.agent} to their source streams")
    return 0
