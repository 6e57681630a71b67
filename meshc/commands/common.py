"""What the commands that load a mesh or talk to a server share: their options, the
server URL, loading a mesh, and :func:`guarded`, which turns every expected failure
into one line on stderr and an exit code instead of a traceback.

Everything here takes plain values; only :func:`guarded` sees the parsed arguments,
because it wraps a command's handler. Printing lives in ``meshc.commands.output``,
which `meshc validate` imports without the runtime.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import sys
from collections.abc import Callable

import redis
from meshc.api import MeshError
from meshc.codegen.build import Built, build_cached
from meshc.commands.output import add_color_option, emit
from meshc.runtime.connect import ConnectError, redact
from meshc.runtime.errors import MeshRuntimeError
from meshc.runtime.process.server import ServerError, resolve_url
from meshc.runtime.spec import MeshSpec

Handler = Callable[[argparse.Namespace], int]
DEBUG_ENV = "MESHC_DEBUG"
REDIS_HELP = "server URL (redis://, rediss://); else REDIS_URL, else this folder's embedded server"


def add_mesh_options(p: argparse.ArgumentParser) -> None:
    """``FILE``, ``--redis`` and ``--color`` (for the diagnostics of an invalid mesh)."""
    p.add_argument("file", metavar="FILE", help="mesh file (YAML)")
    p.add_argument("--redis", metavar="URL", help=REDIS_HELP)
    add_color_option(p)


def server_url(redis_url: str | None, *, start: bool = False, durability: str | None = None) -> str:
    """The URL to use: ``--redis``, else ``REDIS_URL``, else the embedded server
    (started when ``start``: run, demo)."""
    return resolve_url(redis_url, start=start, durability=durability)  # type: ignore[arg-type]


def load(file: str, *, resolve: bool = False) -> tuple[Built, MeshSpec]:
    """Compile ``file`` into the cache and import its topology (MeshError if invalid;
    with ``resolve``, also when a handler cannot be imported or called)."""
    built = build_cached(file, resolve=resolve)
    return built, built.load_spec()


def guarded(name: str, handler: Handler) -> Handler:
    """Run ``handler``; print an expected failure as one line and return its exit code.

    2 for what the user must fix before retrying (a file that cannot be opened, no
    server, a URL nothing answers at), 1 for a failed operation or an invalid mesh
    (whose diagnostics are printed). Anything else is a bug in meshc: reported on one
    line too, with its traceback when ``MESHC_DEBUG`` is set.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except MeshError as err:
            emit([err.analysis], "text", getattr(args, "color", "auto"))
            return 1
        except (ServerError, ConnectError) as err:
            return fail(name, str(err), 2)
        except MeshRuntimeError as err:  # MeshOpsError: submit, admin, wait; ConfigError
            return fail(name, str(err), 1)
        except redis.RedisError as err:
            return fail(
                name, f"server error: {_redis_reason(err, getattr(args, 'redis', None))}", 1
            )
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


def unknown_stream(spec: MeshSpec, name: str) -> str:
    """Why ``name`` is refused, with the stream it was probably meant to be (as the
    validator suggests a key), else the intake streams, where tasks go in."""
    close = difflib.get_close_matches(name, sorted(spec.streams), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        hint = "its intake streams: " + (", ".join(spec.intake_streams()) or "none")
    return f"mesh {spec.name!r} has no stream {name!r}; {hint}"


def fail(name: str, message: str, code: int) -> int:
    print(f"meshc {name}: {message}", file=sys.stderr)
    return code


def _redis_reason(err: redis.RedisError, explicit: str | None) -> str:
    """The server's message; for a lost connection, also which server it was."""
    if isinstance(err, redis.ConnectionError | redis.TimeoutError):
        url = explicit or os.environ.get("REDIS_URL") or "the embedded server"
        return f"lost the connection to {redact(url)}: {err}"
    return str(err)
