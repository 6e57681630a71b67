"""One agent replica as a process: signals, exit codes, and what its supervisor says.

``run_agent`` builds a :class:`~meshc.runtime.worker.Worker` and runs it until
SIGTERM/SIGINT. Under ``meshc run`` the supervisor tells the worker, through its
environment, the consumer name of its replica slot, whether the previous process in
that slot died holding work (then it recovers that work first), and a pipe on which it
reports that it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from meshc.runtime.errors import ConfigError
from meshc.runtime.process.supervisor import STATUS_FD_ENV, SUPERVISOR_ENV
from meshc.runtime.spec import MeshSpec
from meshc.runtime.worker import Worker

RECOVER_ENV = "MESHC_RECOVER"  # "1": recover what a predecessor under this name held


def run_agent(
    mesh: MeshSpec,
    agent: str,
    handler: Callable[..., Any] | None,
    *,
    redis_url: str,
    consumer: str | None = None,
    partitions: Sequence[int] | None = None,
    stop: threading.Event | None = None,
    recover: bool | None = None,
) -> int:
    """Run one replica until SIGTERM/SIGINT or ``stop``; the process exit code.

    0 after a clean stop (or for an agent with no inputs, such as a producer), 1 when
    the worker died on an error, 2 when the spec cannot run as given, 3 when handler
    calls stuck past their timeout made it exit for a fresh process.
    """
    log = logging.getLogger(f"meshc.worker.{agent}")
    stop = stop or threading.Event()
    if not _die_with_supervisor(log):
        return 1
    if recover is None:
        recover = os.environ.get(RECOVER_ENV) == "1"
    try:
        worker = Worker(
            mesh,
            agent,
            handler,
            redis_url=redis_url,
            consumer=consumer,
            partitions=partitions,
            stop=stop,
            recover=recover,
            on_ready=_status_reporter(),
        )
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if not worker.spec.reads:
        log.info("agent %s reads no stream; nothing to run", agent)
        return 0
    restore = _install_signals(stop, log)
    try:
        _event_loop_runner()(worker.run())
        return worker.exit_code
    except ConfigError as exc:  # it cannot run as built: exit before ready
        log.error("%s", exc)
        return 2
    except Exception:
        log.exception("worker %s stopped on an error", agent)
        return 1
    finally:
        restore()


def _die_with_supervisor(log: logging.Logger) -> bool:
    """Under a supervisor: be sent SIGTERM when it dies (Linux ``PR_SET_PDEATHSIG``), so
    a ``meshc run`` killed with SIGKILL leaves no worker running unsupervised. False
    when the supervisor is already gone."""
    raw = os.environ.get(SUPERVISOR_ENV)
    if not raw or not raw.isdigit():
        return True
    with contextlib.suppress(Exception):  # not Linux: the stdin pipe still tells
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(raw):
        log.error("the supervisor (pid %s) is gone; not starting", raw)
        return False
    return True


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop's ``run`` where it is installed (its loop costs about a tenth less CPU per
    call in flight; BENCHMARKS.md), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _status_reporter() -> Callable[[], None] | None:
    """Write ``ready`` to the supervisor's pipe (``MESHC_STATUS_FD``), once."""
    raw = os.environ.get(STATUS_FD_ENV)
    if not raw or not raw.isdigit():
        return None
    fd = int(raw)

    def ready() -> None:
        with contextlib.suppress(OSError):
            os.write(fd, b"ready\n")
            os.close(fd)

    return ready


def _install_signals(stop: threading.Event, log: logging.Logger) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop``; a second signal gets the previous behaviour back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: finishing the work in flight", signal.Signals(signum).name)
        stop.set()
        restore()

    for sig in previous:
        signal.signal(sig, on_signal)
    return restore
