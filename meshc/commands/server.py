"""``meshc server start|stop|status``: the embedded server of this working folder.

This module also holds what every command that talks to a server shares: the
``--redis`` option, the URL it resolves to (``--redis``, else ``REDIS_URL``, else the
embedded server), loading a mesh through the build cache, and :func:`guarded`, which
turns every expected failure into one line on stderr and an exit code instead of a
traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import redis
from meshc.api import MeshError
from meshc.codegen.build import Built, build_cached
from meshc.commands.validate import emit
from meshc.runtime.connect import ConnectError, redact
from meshc.runtime.errors import MeshRuntimeError
from meshc.runtime.server import ServerError, ensure_server, resolve_url, server_status, stop_server
from meshc.runtime.spec import MeshSpec

Handler = Callable[[argparse.Namespace], int]
DEBUG_ENV = "MESHC_DEBUG"
REDIS_HELP = "server URL (redis://, rediss://); else REDIS_URL, else this folder's embedded server"


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
        help="appendfsync everysec (default) or always (strict); on a running server, changes it",
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
    print(f"embedded server running at {info.url} (pid {info.pid}, data in {info.folder}/.meshc)")
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
    print(f"embedded server running at {info.url} (pid {info.pid})")
    return 0


# -- shared by the commands that talk to a server ---------------------------------------


def add_mesh_options(p: argparse.ArgumentParser, *, diagnostics: bool = True) -> None:
    """``FILE`` and ``--redis``; hidden ``--format``/``--color`` for diagnostics output."""
    p.add_argument("file", metavar="FILE", help="mesh file (YAML)")
    p.add_argument("--redis", metavar="URL", help=REDIS_HELP)
    if diagnostics:
        p.add_argument("--format", default="text", help=argparse.SUPPRESS)
    p.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help=argparse.SUPPRESS
    )


def server_url(args: argparse.Namespace, *, start: bool = False) -> str:
    """The URL to use; ``start`` (run, demo) starts the embedded server when needed."""
    durability = getattr(args, "durability", None)
    return resolve_url(args.redis, start=start, durability=durability)


def load(args: argparse.Namespace) -> tuple[Built, MeshSpec]:
    """Compile ``args.file`` into the cache and import its topology (MeshError if invalid)."""
    built = build_cached(args.file)
    return built, built.load_spec()


def guarded(name: str, handler: Handler) -> Handler:
    """Run ``handler``; print an expected failure as one line and return its exit code.

    2 for what the user must fix before retrying (a file that cannot be opened, no
    server, a URL nothing answers at), 1 for a failed operation or an invalid mesh.
    Anything else is a bug in meshc: reported on one line too, with its traceback
    when ``MESHC_DEBUG`` is set.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except MeshError as err:
            emit([err.analysis], args)
            return 1
        except (ServerError, ConnectError) as err:
            return fail(name, str(err), 2)
        except MeshRuntimeError as err:  # MeshOpsError: submit, admin, wait; ConfigError
            return fail(name, str(err), 1)
        except redis.RedisError as err:
            return fail(name, f"server error: {_redis_reason(err, args)}", 1)
        except BrokenPipeError:
            raise
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            return fail(name, f"{where}{err.strerror or err}", 2)
        except Exception as err:  # a bug: still one line, with a way to see more
            if os.environ.get(DEBUG_ENV):
                raise
            return fail(
                name,
                f"internal error: {type(err).__name__}: {err} "
                f"(set {DEBUG_ENV}=1 to see the traceback)",
                1,
            )

    return run


def fail(name: str, message: str, code: int) -> int:
    print(f"meshc {name}: {message}", file=sys.stderr)
    return code


def _redis_reason(err: redis.RedisError, args: argparse.Namespace) -> str:
    """The server's message; for a lost connection, also which server it was."""
    if isinstance(err, redis.ConnectionError | redis.TimeoutError):
        url = getattr(args, "redis", None) or os.environ.get("REDIS_URL") or "the embedded server"
        return f"lost the connection to {redact(url)}: {err}"
    return str(err)
