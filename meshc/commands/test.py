"""``meshc test FILE``: property tests of a mesh's own handlers, joins and runtime path.

Per agent, with payloads drawn from the mesh's types: handlers accept every valid
input and their outputs fit their streams (contract); the same input twice gives the
same outputs (determinism); aggregators merge the same whatever order partials
arrive in (join order). Then, on a throw-away server, tasks go through the running
mesh, some messages delivered twice on purpose: each must give exactly one result per
terminal stream with an unbroken trace. Exit 0 when every check passes, 1 when one
fails (with the smallest failing input) or the mesh is invalid, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from meshc import extras
from meshc.commands.output import add_color_option


def register(sub: Any) -> None:
    p = sub.add_parser("test", help="property-test a mesh end to end", description=__doc__)
    p.add_argument("file", metavar="FILE", help="mesh file (YAML)")
    p.add_argument(
        "--max-examples", type=_positive, default=100, metavar="N",
        help="inputs drawn per check (default 100; end to end runs N/10, at most 10)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, metavar="S", help="seed of the draws (default: random)")
    p.add_argument("--redis", metavar="URL", help="server for end to end (default: a new one)")
    p.add_argument("--agent", metavar="NAME", help="check one agent only (no end to end)")
    add_color_option(p)
    p.set_defaults(handler=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    needs = extras.problem("testing", "property testing")
    if needs:
        print(f"meshc test: {needs}", file=sys.stderr)
        return 2
    with _hypothesis_files_in(Path(".meshc", "hypothesis").absolute()):
        return _test(args)


@contextlib.contextmanager
def _hypothesis_files_in(folder: Path) -> Iterator[None]:
    """Hypothesis keeps caches (constants of the code under test, Unicode tables) in
    ``.hypothesis/`` of the working folder, which a user running ``meshc test`` in
    their project did not ask for: they go under ``.meshc/``, with meshc's other
    files, unless HYPOTHESIS_STORAGE_DIRECTORY says where."""
    from hypothesis.configuration import set_hypothesis_home_dir

    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    set_hypothesis_home_dir(folder)
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)


def _test(args: argparse.Namespace) -> int:
    from meshc.api import MeshError
    from meshc.commands.output import cannot_open, emit
    from meshc.runtime.connect import MeshOpsError
    from meshc.testing.outcome import RunSettings
    from meshc.testing.report import format_report
    from meshc.testing.runner import ServerInUse, UnknownAgent, run_tests

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    settings = RunSettings(args.max_examples, seed, max(1, min(10, args.max_examples // 10)))
    progress = Progress(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # handlers that print stay off the report
            report = run_tests(
                args.file, settings, agent=args.agent, redis_url=args.redis, progress=progress
            )
    except OSError as err:
        return cannot_open(args.file, err)
    except MeshError as err:
        emit([err.analysis], "text", args.color)
        return 1
    except (UnknownAgent, ServerInUse, MeshOpsError) as err:
        print(f"meshc test: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # no traceback, ever: say what broke and where to look
        print(f"meshc test: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        progress.done()
    sys.stdout.write(format_report(report))
    return 1 if report.failed else 0


class Progress:
    """One line on stderr saying which check runs: rewritten in place on a terminal,
    one line per check otherwise (so logs show it too)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False

    def __call__(self, i: int, total: int, label: str) -> None:
        width = len(str(total))
        bar = "#" * (20 * (i - 1) // max(1, total))
        text = f"[{bar:<20}] {i:>{width}}/{total} {label}"
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
        else:
            self.stream.write(f"meshc test {text}\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
