"""Keep a set of worker processes running (``meshc run``).

A mesh only makes progress while each agent has a live worker, and a worker can die
for reasons it cannot handle itself (out of memory, a bug in a C extension, a lost
server). The supervisor restarts a dead worker and reports every restart, so a crash
loop is visible rather than silent. How soon depends on how it died:

- A worker that dies *before* it says it is ready (it writes ``ready`` on a pipe the
  supervisor gives it) cannot start: an import error, a bad setting. It is restarted
  with exponential backoff (0.5 s doubling to 30 s), so it does not spin.
- A worker that dies *after* it was ready died of its work: a message that kills it,
  handler threads stuck past their deadline, memory. Its lane cannot wait, so it is
  restarted at once (0.1 s); its successor finds what it held and isolates the message
  that kills it (``recovery``), so every such restart makes progress.

With a reload handler (``meshc run``), SIGHUP reloads instead of stopping: the
handler runs on a thread of its own and changes the :class:`Pool` of workers.
On SIGTERM/SIGINT the supervisor forwards the signal to every worker and waits:
workers finish and commit what they hold (docs/design.md, "Shutdown"), and nothing
is acknowledged twice or lost. Workers run in their own process group, so a Ctrl-C at
the terminal reaches them once, through the supervisor; and each dies with the
supervisor (a parent-death signal), so a killed ``meshc run`` leaves none behind.

A worker's secret (its server URL with its credentials) is written to its stdin, not
put in its environment or on its command line, where other processes can read it;
the environment it inherits is scrubbed of meshc's own secrets.
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


# Environment variables a worker must not inherit: an operator's password, the
# supervisor's own server URL (with its credentials), secrets of other agents.
SCRUBBED_PREFIXES = ("MESHC_ACL_PASSWORD_", "MESHC_WORKER_URL")
SCRUBBED = frozenset({"REDIS_URL", "MESHC_SERVE_TOKENS"})
STATUS_FD_ENV = "MESHC_STATUS_FD"
SECRET_ENV = "MESHC_SECRET_STDIN"  # "1": the first line of stdin is the worker's URL
SUPERVISOR_ENV = "MESHC_SUPERVISOR_PID"  # the worker dies with this process


@dataclass(frozen=True)
class WorkerCommand:
    """One process to keep running: a name for reports, its argv, extra environment,
    and a secret written to its stdin (its server URL with credentials)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    agent: str = ""  # the agent it runs: a reload replaces an agent's replicas together


@dataclass(frozen=True)
class Backoff:
    """Restart delays. Before it was ready: ``initial`` doubling up to ``maximum``, back
    to ``initial`` once a worker has stayed up ``reset_after`` seconds. After it was
    ready: ``after_ready`` (it died of its work; see the module docstring)."""

    initial: float = 0.5
    maximum: float = 30.0
    reset_after: float = 60.0
    after_ready: float = 0.1


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
    status: int | None = None  # read end of the worker's status pipe
    ready: bool = False
    retiring: bool = False  # told to stop for good (a reload): not restarted


class Pool:
    """The workers of a running :func:`supervise`, changed by a reload on its own thread.

    Every change holds ``lock``, which the supervisor's loop holds while it tends the
    workers, so a worker is never tended and replaced at once.
    """

    def __init__(self, children: list[_Child], backoff: Backoff, report: Report) -> None:
        self.children, self.backoff, self.report = children, backoff, report
        self.lock = threading.Lock()

    def agents(self) -> set[str]:
        with self.lock:
            return {c.command.agent for c in self.children}

    def start(self, commands: Sequence[WorkerCommand], stop: threading.Event) -> None:
        """Start ``commands`` and wait until every one is ready (or ``stop``).

        The supervisor's own thread spawns them, as if a restart were due: a worker's
        parent-death signal fires when the *thread* that started it ends, so one
        spawned by this (short-lived) reload thread would be stopped with it.
        """
        new = [_Child(c, delay=self.backoff.initial) for c in commands]
        for child in new:
            child.restart_at, child.restarts = time.monotonic(), -1  # -1: counted as a start
        with self.lock:
            self.children.extend(new)
        while not all(c.ready for c in new) and not stop.wait(POLL):
            pass

    def retire(self, agent: str, stop: threading.Event) -> None:
        """SIGTERM every replica of ``agent`` (each finishes and commits what it holds)
        and wait until they have exited; they are not restarted."""
        with self.lock:
            mine = [c for c in self.children if c.command.agent == agent]
            for child in mine:
                child.retiring = True
                if child.proc is not None and child.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.send_signal(signal.SIGTERM)
        while any(c.proc is not None and c.proc.poll() is None for c in mine):
            if stop.wait(POLL):
                return
        with self.lock:
            for child in mine:
                _close_status(child)
                self.children.remove(child)
                pid = child.proc.pid if child.proc is not None else None
                code = child.proc.returncode if child.proc is not None else None
                self.report(SupervisorEvent("stop", child.command.name, pid, code))


def supervise(
    commands: Sequence[WorkerCommand],
    *,
    on_event: Callable[[SupervisorEvent], None] | None = None,
    stop: threading.Event | None = None,
    backoff: Backoff = Backoff(),
    grace: float = 30.0,
    on_reload: Callable[[Pool, threading.Event], None] | None = None,
    reload: threading.Event | None = None,
) -> int:
    """Run ``commands`` until SIGTERM/SIGINT (or ``stop`` is set); returns 0.

    Signal handlers are installed only on the main thread; elsewhere (tests) ``stop``
    is the way to end it. Workers still alive ``grace`` seconds after the forwarded
    signal are killed. With ``on_reload``, SIGHUP (or setting ``reload``) runs it on a
    thread of its own with the pool of workers, one reload at a time.
    """
    stop = stop or threading.Event()
    reload = reload or threading.Event()
    report = _reporter(on_event)
    children = [_Child(c, delay=backoff.initial) for c in commands]
    pool = Pool(children, backoff, report)
    received: list[int] = []
    all_ready = False
    reloading: threading.Thread | None = None
    with _stop_signals(stop, received, reload if on_reload else None):
        for child in children:
            _spawn(child, backoff, report)
        while not stop.wait(POLL):
            with pool.lock:
                for child in children:
                    _tend(child, backoff, report)
            if not all_ready and all(c.ready for c in children):
                all_ready = True
                log.info("all %d workers ready", len(children))
            if on_reload and reload.is_set() and not (reloading and reloading.is_alive()):
                reload.clear()
                reloading = threading.Thread(target=on_reload, args=(pool, stop), daemon=True)
                reloading.start()
    if reloading is not None:
        reloading.join()
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


def worker_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment minus meshc's secrets, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SCRUBBED and not k.startswith(SCRUBBED_PREFIXES)
    }
    return {**env, **extra}


def _spawn(child: _Child, backoff: Backoff, report: Report) -> None:
    """Start the child; a command that cannot even start is backed off like a crash."""
    cmd = child.command
    child.started = time.monotonic()
    child.restart_at = None
    child.ready = False
    status_read, status_write = os.pipe()
    os.set_blocking(status_read, False)
    env = worker_environment(
        {**cmd.env, STATUS_FD_ENV: str(status_write), SUPERVISOR_ENV: str(os.getpid())}
    )
    if cmd.secret is not None:
        env[SECRET_ENV] = "1"
    try:
        child.proc = subprocess.Popen(
            list(cmd.argv),
            env=env,
            stdin=subprocess.PIPE if cmd.secret is not None else subprocess.DEVNULL,
            process_group=0,
            pass_fds=(status_write,),
        )
    except OSError as err:
        log.error("worker %s could not start: %s", cmd.name, err)
        child.proc = None
        os.close(status_read)
        _schedule_restart(child, backoff, report, 127)
        return
    finally:
        os.close(status_write)
    child.status = status_read
    if cmd.secret is not None and child.proc.stdin is not None:
        with contextlib.suppress(OSError):  # it died at once: noticed by _tend
            child.proc.stdin.write(cmd.secret.encode() + b"\n")
            child.proc.stdin.close()
    kind: EventKind = "restart" if child.restarts else "start"
    report(SupervisorEvent(kind, cmd.name, child.proc.pid, restarts=child.restarts))


def _tend(child: _Child, backoff: Backoff, report: Report) -> None:
    """Notice readiness, a death (schedule a restart) or a restart that is due (spawn)."""
    if child.retiring:
        return
    if child.restart_at is not None:
        if time.monotonic() >= child.restart_at:
            child.restarts += 1
            _spawn(child, backoff, report)
        return
    _read_status(child)
    code = child.proc.poll() if child.proc is not None else 127
    if code is not None:
        _read_status(child)
        _close_status(child)
        _schedule_restart(child, backoff, report, code)


def _read_status(child: _Child) -> None:
    if child.status is None or child.ready:
        return
    try:
        data = os.read(child.status, 64)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if b"ready" in data:
        child.ready = True
        _close_status(child)


def _close_status(child: _Child) -> None:
    if child.status is not None:
        with contextlib.suppress(OSError):
            os.close(child.status)
        child.status = None


def _schedule_restart(child: _Child, backoff: Backoff, report: Report, code: int) -> None:
    now = time.monotonic()
    if child.ready:
        child.delay = backoff.initial  # it ran: a crash of its work, not of its start
        delay = backoff.after_ready
    else:
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
    for child in children:
        _close_status(child)


@contextlib.contextmanager
def _stop_signals(
    stop: threading.Event, received: list[int], reload: threading.Event | None = None
) -> Iterator[None]:
    """On the main thread, turn SIGTERM/SIGINT into ``stop``, and SIGHUP into ``reload``
    when given (else into ``stop``); restore on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP and reload is not None:
            reload.set()
            return
        received.append(signum if signum != signal.SIGHUP else signal.SIGTERM)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
