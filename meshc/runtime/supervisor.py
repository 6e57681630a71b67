"""Keep a set of worker processes running (``meshc run``).

A mesh only makes progress while each agent has a live worker, and a worker can die
for reasons it cannot handle itself (out of memory, a bug in a C extension, a lost
server). The supervisor restarts a dead worker with exponential backoff, so a worker
that crashes at start does not spin, and reports every restart so a crash loop is
visible rather than silent. On SIGTERM/SIGINT it forwards the signal to every worker
and waits: workers finish and commit what they hold in flight (DESIGN.md section 5,
"Shutdown"), and nothing is acknowledged twice or lost.

Workers run in their own process group, so a Ctrl-C at the terminal reaches them once,
through the supervisor, instead of twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Literal

log = logging.getLogger("meshc.supervisor")

EventKind = Literal["start", "exit", "restart", "stop"]
POLL = 0.05
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class WorkerCommand:
    """One process to keep running: a name for reports, its argv and extra environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial`` doubling up to ``maximum``; back to ``initial`` once a
    worker has stayed up ``reset_after`` seconds (it was healthy, so the next crash is new)."""

    initial: float = 0.5
    maximum: float = 30.0
    reset_after: float = 60.0


@dataclass(frozen=True)
class SupervisorEvent:
    """What happened to a worker; ``exit`` events carry the code or signal name."""

    kind: EventKind
    name: str
    pid: int | None = None
    returncode: int | None = None
    delay: float | None = None
    restarts: int = 0

    def describe(self) -> str:
        """A one-line report, e.g. ``worker grammar (pid 12) killed by SIGKILL``."""
        who = f"worker {self.name}" + (f" (pid {self.pid})" if self.pid else "")
        if self.kind == "exit":
            return f"{who} {exit_reason(self.returncode)}; restarting in {self.delay:g} s"
        if self.kind == "restart":
            return f"{who} restarted (restart #{self.restarts})"
        return f"{who} {'started' if self.kind == 'start' else 'stopped'}"


def exit_reason(code: int | None) -> str:
    """``exited with code 3`` or ``killed by SIGKILL`` (Popen reports signals as -N)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Child:
    command: WorkerCommand
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


def supervise(
    commands: Sequence[WorkerCommand],
    *,
    on_event: Callable[[SupervisorEvent], None] | None = None,
    stop: threading.Event | None = None,
    backoff: Backoff = Backoff(),
    grace: float = 30.0,
) -> int:
    """Run ``commands`` until SIGTERM/SIGINT (or ``stop`` is set); returns 0.

    Signal handlers are installed only on the main thread; elsewhere (tests) ``stop``
    is the way to end it. Workers still alive ``grace`` seconds after the forwarded
    signal are killed.
    """
    stop = stop or threading.Event()
    report = _reporter(on_event)
    children = [_Child(c, delay=backoff.initial) for c in commands]
    received: list[int] = []
    with _stop_signals(stop, received):
        for child in children:
            _spawn(child, backoff, report)
        while not stop.wait(POLL):
            for child in children:
                _tend(child, backoff, report)
    _shutdown(children, received[0] if received else signal.SIGTERM, grace, report)
    return 0


def _reporter(on_event: Callable[[SupervisorEvent], None] | None) -> Report:
    def report(event: SupervisorEvent) -> None:
        level = logging.WARNING if event.kind in ("exit", "restart") else logging.INFO
        log.log(level, "%s", event.describe())
        if on_event is not None:
            on_event(event)

    return report


Report = Callable[[SupervisorEvent], None]


def _spawn(child: _Child, backoff: Backoff, report: Report) -> None:
    """Start the child; a command that cannot even start is backed off like a crash."""
    cmd = child.command
    child.started = time.monotonic()
    child.restart_at = None
    try:
        child.proc = subprocess.Popen(
            list(cmd.argv), env={**os.environ, **cmd.env}, stdin=subprocess.DEVNULL, process_group=0
        )
    except OSError as err:
        log.error("worker %s could not start: %s", cmd.name, err)
        child.proc = None
        _schedule_restart(child, backoff, report, 127)
        return
    kind: EventKind = "restart" if child.restarts else "start"
    report(SupervisorEvent(kind, cmd.name, child.proc.pid, restarts=child.restarts))


def _tend(child: _Child, backoff: Backoff, report: Report) -> None:
    """Notice a death (schedule a restart) or a restart that is due (spawn)."""
    if child.restart_at is not None:
        if time.monotonic() >= child.restart_at:
            child.restarts += 1
            _spawn(child, backoff, report)
        return
    code = child.proc.poll() if child.proc is not None else 127
    if code is not None:
        _schedule_restart(child, backoff, report, code)


def _schedule_restart(child: _Child, backoff: Backoff, report: Report, code: int) -> None:
    now = time.monotonic()
    if now - child.started >= backoff.reset_after:
        child.delay = backoff.initial  # it was healthy: this crash starts a new series
    delay = child.delay
    child.delay = min(delay * 2, backoff.maximum)
    child.restart_at = now + delay
    pid = child.proc.pid if child.proc is not None else None
    report(SupervisorEvent("exit", child.command.name, pid, code, delay))


def _shutdown(children: list[_Child], signum: int, grace: float, report: Report) -> None:
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for child in running:
        assert child.proc is not None
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signum)
    deadline = time.monotonic() + grace
    for child in running:
        assert child.proc is not None
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop within %g s; killing it", child.command.name, grace)
            child.proc.kill()
            child.proc.wait()
        report(SupervisorEvent("stop", child.command.name, child.proc.pid, child.proc.returncode))


@contextlib.contextmanager
def _stop_signals(stop: threading.Event, received: list[int]) -> Iterator[None]:
    """On the main thread, turn SIGTERM/SIGINT/SIGHUP into ``stop``; restore on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum if signum != signal.SIGHUP else signal.SIGTERM)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
