"""``meshc demo``: review the sample documents with the multi-lens review mesh.

Starts this folder's embedded server (unless --redis or REDIS_URL names one), runs the
mesh's agents as worker processes, submits every chunk of the documents, waits for a
summary of each, prints them as a report, and stops the workers. Progress goes to
stderr, the report to stdout. Ctrl-C or SIGTERM stops it early, each worker
finishing what it holds first (exit 130 or 143).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from meshc import extras
from meshc.commands.common import REDIS_HELP, fail, guarded, server_url
from meshc.commands.output import add_color_option, use_color
from meshc.demo import DemoResult, build_review_mesh, review, review_mesh_file, sample_documents
from meshc.runtime.connect import redact

NAME = "demo"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="review sample documents with the example mesh", description=__doc__
    )
    p.add_argument(
        "--docs",
        type=int,
        metavar="N",
        help="review N documents (default: each sample once; more reuse them)",
    )
    p.add_argument("--redis", metavar="URL", help=REDIS_HELP)
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds without every summary (default 60; 600 with --model-url)",
    )
    p.add_argument(
        "--model-url",
        metavar="URL",
        help="run the LLM version of the mesh (meshes/doc_review_llm.yaml) against this "
        "OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1); the key, if any, "
        "comes from MESHC_LLM_API_KEY",
    )
    p.add_argument(
        "--model",
        default="local-model",
        metavar="NAME",
        help="model name sent with --model-url (default: local-model)",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="instead of the report, run the mesh behind the HTTP gateway (meshc serve) "
        "until Ctrl-C and print curl commands to try",
    )
    p.add_argument("--port", type=int, default=8080, help="the gateway's port with --serve (8080)")
    add_color_option(p)
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    if args.docs is not None and args.docs < 1:
        return fail(NAME, "--docs must be at least 1", 2)
    if args.timeout is None:
        args.timeout = 600.0 if args.model_url else 60.0
    if args.timeout <= 0:
        return fail(NAME, "--timeout must be more than 0 seconds", 2)
    if args.serve:
        return _serve(args)  # the gateway handles its own signals
    try:
        with _stop_signals():
            return _demo(args)
    except KeyboardInterrupt:
        return _stopped("Ctrl-C", 128 + signal.SIGINT)
    except _Stopped as stopped:
        return _stopped(signal.Signals(stopped.signum).name, 128 + stopped.signum)


def _demo(args: argparse.Namespace) -> int:
    extra_env: dict[str, str] = {}
    needs = extras.problem("llm", "--model-url") if args.model_url else None
    if needs:
        return fail(NAME, needs, 2)
    if args.model_url:
        from meshc.runtime.llm.settings import demo_overrides

        extra_env = demo_overrides(args.model_url, args.model)
    from meshc.examples.review import format_report

    documents = sample_documents(args.docs)
    built = build_review_mesh(llm=bool(args.model_url))
    url = server_url(args.redis, start=True)
    progress = _Progress()
    try:
        result = review(
            built, url, documents, timeout=args.timeout, progress=progress, extra_env=extra_env
        )
    finally:
        progress.done()
    if not result.complete:
        return _incomplete(result, args.timeout)
    color = use_color(args.color, sys.stdout)
    sys.stdout.write(format_report(result.summaries, documents, color=color))
    print(
        f"reviewed {_count(len(documents), 'document')} ({_count(result.chunks, 'chunk')}) "
        f"in {result.seconds:.1f} s",
        file=sys.stderr,
    )
    if not (args.redis or os.environ.get("REDIS_URL")):
        print(
            f"the embedded server keeps running at {redact(url)} (`meshc server stop` stops it)",
            file=sys.stderr,
        )
    return 0


def _serve(args: argparse.Namespace) -> int:
    """The review mesh behind the gateway until Ctrl-C (needs meshc[serve])."""
    if args.model_url:
        return fail(NAME, "--serve runs the plain review mesh; drop --model-url", 2)
    needs = extras.problem("serve", "--serve")
    if needs:
        return fail(NAME, needs, 2)
    from meshc.gateway.config import GatewayConfigError
    from meshc.gateway.demo import serve_demo

    url = server_url(args.redis, start=True)
    try:
        serve_demo(build_review_mesh(), url, "127.0.0.1", args.port)
    except GatewayConfigError as err:
        return fail(NAME, str(err), 2)
    return 0


class _Stopped(Exception):
    """SIGTERM or SIGHUP arrived: the demo stops as it does on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`_Stopped` in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so the workers' block exits through its ``finally`` and stops
    them cleanly; without this SIGTERM killed the demo at once and orphaned its
    workers. Only the first signal raises: the ones after it would interrupt the
    wait for the workers to finish what they hold, and orphan them after all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stopped(how: str, code: int) -> int:
    return fail(NAME, f"stopped ({how}); the workers finished what they held", code)


def _incomplete(result: DemoResult, timeout: float) -> int:
    return fail(
        NAME,
        f"only {len(result.summaries)} of {result.chunks} chunks were reviewed within "
        f"{timeout:g} s; `meshc status {review_mesh_file()}` shows where work waits",
        1,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class _Progress:
    """``reviewed 12/20 chunks`` on stderr: rewritten in place on a terminal, else a
    line whenever the count changes."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if done == self.last:
            return
        self.last = done
        line = f"reviewed {done}/{total} chunks"
        if self.tty:
            sys.stderr.write(f"\r{line}")
        else:
            sys.stderr.write(f"{line}\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.last >= 0:
            sys.stderr.write("\n")
