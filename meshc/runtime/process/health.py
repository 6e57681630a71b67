"""Liveness of a worker process, for container probes (``meshc compile --deploy``).

A worker whose loop turns touches a file (``MESHC_HEALTH_FILE``) at most once a second;
the probe ``python -m meshc.runtime.process.health FILE --max-age S`` exits 0 while the file is
younger than S seconds and 1 otherwise, so an orchestrator restarts a worker whose loop
is stuck. The loop also turns while the server is unreachable (it retries with
backoff), so a server outage does not make every worker look dead: restarting them
would not bring the server back. Nothing here touches the server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HEALTH_ENV = "MESHC_HEALTH_FILE"
EVERY = 1.0


class Heartbeat:
    """Touches ``path`` at most every ``every`` seconds; does nothing without a path."""

    def __init__(self, path: str | None, every: float = EVERY) -> None:
        self.path = Path(path) if path else None
        self.every = every
        self._last = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Heartbeat:
        env = os.environ if environ is None else environ
        return cls(env.get(HEALTH_ENV) or None)

    def beat(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        with contextlib.suppress(OSError):  # the probe will say so; the worker goes on
            self.path.touch()


def age(path: Path) -> float | None:
    """Seconds since ``path`` was last touched, or None when it does not exist."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meshc.runtime.process.health", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("file", nargs="?", default=os.environ.get(HEALTH_ENV))
    parser.add_argument("--max-age", type=float, default=60.0, metavar="S")
    args = parser.parse_args(argv)
    if not args.file:
        print(f"no heartbeat file: give FILE or set {HEALTH_ENV}", file=sys.stderr)
        return 2
    seconds = age(Path(args.file))
    if seconds is None:
        print(f"{args.file}: no heartbeat yet", file=sys.stderr)
        return 1
    if seconds > args.max_age:
        print(
            f"{args.file}: last heartbeat {seconds:.0f} s ago (> {args.max_age:g})", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
