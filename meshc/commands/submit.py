"""``meshc submit FILE STREAM``: write tasks into an intake stream.

The task is ``--json '{…}'``, or one JSON object per line on stdin. Every line is
checked against the stream's type first and nothing is written unless all of them
fit, so a bad line at the end never leaves half a batch behind. Prints one line per
task: its entry id and its trace (the id to wait for, or to find in ``meshc tail``),
or with ``--format json`` one JSON object per task (``id``, ``trace``, ``stream``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
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
from meshc.runtime import cluster, running
from meshc.runtime.spec import MeshSpec
from pydantic import ValidationError

NAME = "submit"


class _BadLine(Exception):
    """One input line that is not a JSON object fitting the stream's type."""


def register(sub: Any) -> None:
    p = sub.add_parser("submit", help="write tasks into an intake stream", description=__doc__)
    add_mesh_options(p)
    p.add_argument("stream", metavar="STREAM", help="intake stream (written by a producer)")
    p.add_argument("--json", metavar="OBJECT", help="one task as JSON (else JSON lines on stdin)")
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: `<entry id> <trace>` per task (default); json: one object per task "
        'with "id", "trace" and "stream"',
    )
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    _, spec = load(args.file)
    if args.stream not in spec.streams:
        return fail(NAME, unknown_stream(spec, args.stream), 2)
    lines = [("--json", args.json)] if args.json is not None else _stdin_lines()
    try:
        payloads = [_payload(spec, args.stream, where, text) for where, text in lines]
    except _BadLine as err:
        return fail(NAME, f"{err}; nothing was submitted", 1)
    except UnicodeDecodeError:
        return fail(NAME, "stdin is not UTF-8 text; nothing was submitted", 1)
    if not payloads:
        return fail(NAME, "no task: give --json '{...}' or JSON lines on stdin", 2)
    url = cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis)
    with MeshClient(spec, url) as client:
        if not cluster.is_cluster_url(url):
            foreign = running.foreign_owners(client.redis, spec)
            if foreign:
                return fail(NAME, _foreign(spec.name, foreign), 1)
        submitted = client.submit_many(payloads, args.stream)
    for s in submitted:
        if args.format == "json":
            print(orjson.dumps({"id": s.entry_id, "trace": s.trace, "stream": s.stream}).decode())
        else:
            print(f"{s.entry_id} {s.trace}")
    return 0


def _foreign(name: str, owners: dict[str, str]) -> str:
    """Why a task for mesh ``name`` is refused: other meshes own some of its streams."""
    by_owner: dict[str, list[str]] = {}
    for stream, owner in sorted(owners.items()):
        by_owner.setdefault(owner, []).append(f"`{stream}`")
    owned = "; ".join(f"mesh `{o}` owns {', '.join(s)}" for o, s in sorted(by_owner.items()))
    return (
        f"mesh `{name}` declares streams another mesh runs on this server ({owned}); "
        "nothing was submitted. Submit with that mesh's file, or stop it and start this "
        "one with `meshc run --take-over`"
    )


def _stdin_lines() -> Iterable[tuple[str, str]]:
    if sys.stdin.isatty():
        print("reading one JSON task per line; Ctrl-D ends", file=sys.stderr)
    for number, line in enumerate(sys.stdin, start=1):
        if line.strip():
            yield f"stdin:{number}", line


def _payload(spec: MeshSpec, stream: str, where: str, text: str) -> dict[str, Any]:
    """The parsed object, checked against the stream's model (errors name the line)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise _BadLine(f"{where}: invalid JSON: {err}") from None
    if not isinstance(value, dict):
        raise _BadLine(f"{where}: a task is a JSON object, not {type(value).__name__}")
    model = spec.streams[stream].model
    try:
        model.model_validate(value)
    except ValidationError as err:
        raise _BadLine(
            f"{where}: does not fit {stream} ({model.__name__}): {_problems(err)}"
        ) from None
    return value


def _problems(err: ValidationError) -> str:
    """Pydantic's errors on one line: ``field: message; …``."""
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"]) or "(payload)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)
