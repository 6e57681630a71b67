"""``meshc server start|stop|status``: the embedded server of this working folder."""

from __future__ import annotations

import argparse
from typing import Any

from meshc.commands.common import guarded
from meshc.runtime.process.server import FSYNC, ensure_server, server_status, stop_server

FSYNC_NAMES = {name: f"durability {name}: appendfsync {mode}" for name, mode in FSYNC.items()}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "server",
        help="start, stop or inspect the embedded server",
        description="The embedded Valkey of this working folder (data in .meshc/).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start this folder's embedded server")
    start.add_argument(
        "--durability",
        choices=("default", "strict"),
        default=None,
        help="appendfsync everysec (default) or always (strict); changes a running server, "
        "and is kept for every later start until changed (default: as last chosen)",
    )
    start.set_defaults(handler=guarded("server start", _start))
    stop = actions.add_parser("stop", help="stop this folder's embedded server")
    stop.set_defaults(handler=guarded("server stop", _stop))
    status = actions.add_parser(
        "status", help="is this folder's embedded server running? (exit 0 yes, 1 no)"
    )
    status.set_defaults(handler=guarded("server status", _status))


def _start(args: argparse.Namespace) -> int:
    info = ensure_server(durability=args.durability)
    print(
        f"embedded server running at {info.address} (pid {info.pid}, "
        f"{FSYNC_NAMES[info.durability]}, data and password in {info.folder}/.meshc)"
    )
    return 0


def _stop(args: argparse.Namespace) -> int:
    if stop_server():
        print("embedded server stopped")
    else:
        print("no embedded server was running in this folder")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = server_status()
    if info is None:
        print("embedded server: not running (start it with `meshc server start`)")
        return 1
    print(
        f"embedded server running at {info.address} (pid {info.pid}, "
        f"{FSYNC_NAMES[info.durability]})"
    )
    return 0
