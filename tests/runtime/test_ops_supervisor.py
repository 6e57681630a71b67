"""The supervisor restarts crashing workers with backoff and forwards stop signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from meshc.runtime.process.supervisor import (
    Backoff,
    SupervisorEvent,
    WorkerCommand,
    exit_reason,
    supervise,
)

FAST = Backoff(initial=0.05, maximum=0.2, reset_after=60.0)


def _run_in_thread(
    commands: list[WorkerCommand], backoff: Backoff = FAST
) -> tuple[threading.Event, list[SupervisorEvent], threading.Thread]:
    stop, events = threading.Event(), []
    thread = threading.Thread(
        target=supervise, args=(commands,),
        kwargs={"on_event": events.append, "stop": stop, "backoff": backoff, "grace": 5.0},
    )  # fmt: skip
    thread.start()
    return stop, events, thread


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_crashing_worker_is_restarted_with_backoff(tmp_path: Path) -> None:
    crash = WorkerCommand("crash", [sys.executable, "-c", "import sys; sys.exit(3)"])
    steady = WorkerCommand("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    stop, events, thread = _run_in_thread([crash, steady])
    _wait_for(lambda: sum(e.kind == "restart" for e in events) >= 4)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    exits = [e for e in events if e.kind == "exit"]
    assert all(e.name == "crash" and e.returncode == 3 for e in exits)
    assert [e.delay for e in exits[:4]] == [0.05, 0.1, 0.2, 0.2]  # doubling, capped
    assert "exited with code 3; restarting in 0.05 s" in exits[0].describe()
    restarts = [e for e in events if e.kind == "restart"]
    assert [e.restarts for e in restarts[:3]] == [1, 2, 3]
    assert {e.name for e in events if e.kind == "stop"} >= {"steady"}


def test_backoff_resets_after_a_healthy_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    code = textwrap.dedent(f"""
        import pathlib, sys, time
        p = pathlib.Path({str(runs)!r})
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        time.sleep(1.0 if n == 3 else 0)  # the third run is healthy for a while
        sys.exit(1)
    """)
    backoff = Backoff(initial=0.05, maximum=1.0, reset_after=0.8)
    stop, events, thread = _run_in_thread(
        [WorkerCommand("w", [sys.executable, "-c", code])], backoff
    )
    _wait_for(lambda: sum(e.kind == "exit" for e in events) >= 4)
    stop.set()
    thread.join(10)
    delays = [e.delay for e in events if e.kind == "exit"]
    assert delays[:4] == [0.05, 0.1, 0.05, 0.1]
    assert exit_reason(-9) == "killed by SIGKILL"


def test_command_that_cannot_start_is_backed_off() -> None:
    stop, events, thread = _run_in_thread([WorkerCommand("ghost", ["/nonexistent/worker"])])
    _wait_for(lambda: sum(e.kind == "exit" for e in events) >= 3)
    stop.set()
    thread.join(10)
    exits = [e for e in events if e.kind == "exit"]
    assert [e.delay for e in exits[:3]] == [0.05, 0.1, 0.2]
    assert exits[0].returncode == 127 and exits[0].pid is None


def test_stop_event_ends_children(tmp_path: Path) -> None:
    sleeper = WorkerCommand("s", [sys.executable, "-c", "import time; time.sleep(60)"])
    stop, events, thread = _run_in_thread([sleeper])
    _wait_for(lambda: any(e.kind == "start" for e in events))
    stop.set()
    thread.join(10)
    [stopped] = [e for e in events if e.kind == "stop"]
    assert stopped.returncode == -signal.SIGTERM


def test_sigterm_is_forwarded_and_waited_for(tmp_path: Path) -> None:
    marker = tmp_path / "child-got-sigterm"
    child = textwrap.dedent(f"""
        import pathlib, signal, sys, time
        def bye(signum, frame):
            time.sleep(0.2)  # finish in-flight work
            pathlib.Path({str(marker)!r}).write_text(str(signum))
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import sys
        from meshc.runtime.process.supervisor import WorkerCommand, supervise
        cmd = WorkerCommand("w", [sys.executable, "-c", {child!r}])
        sys.exit(supervise([cmd], on_event=lambda e: print(e.kind, flush=True)))
    """)
    with subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
        assert sorted(lines) == ["ready", "start"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout.read().strip() == "stop"
    assert marker.read_text() == str(int(signal.SIGTERM))
