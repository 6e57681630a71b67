"""``meshc demo`` stopped by SIGTERM stops as cleanly as on Ctrl-C: its workers finish
and exit, it says it was stopped, and its exit code says by what."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from e2e_kit import wait_for


def _start_demo(workdir: Path, url: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / "demo.err"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(log, "wb") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "meshc", "demo", "--docs", "400", "--redis", url],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return demo, log


def _workers(demo: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(demo.pid).children(recursive=True)


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize(("signum", "code", "how"), [
    (signal.SIGTERM, 143, "SIGTERM"),
    (signal.SIGINT, 130, "Ctrl-C"),
])  # fmt: skip
def test_a_stopped_demo_stops_its_workers_and_says_so(
    workdir: Path, valkey_only_url: str, signum: int, code: int, how: str
) -> None:
    demo, log = _start_demo(workdir, valkey_only_url)
    workers: list[psutil.Process] = []
    try:
        wait_for(lambda: "reviewed " in log.read_text(), timeout=60, what="the demo's progress")
        workers = _workers(demo)
        assert len(workers) == 6, [w.cmdline() for w in workers]
        demo.send_signal(signum)
        demo.wait(60)
        err = log.read_text()
        assert demo.returncode == code, err
        assert f"meshc demo: stopped ({how}); the workers finished what they held" in err
        assert "Traceback" not in err
        deadline = time.monotonic() + 5
        while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(w) for w in workers), "a worker outlived the demo"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for worker in workers:
            if not _gone(worker):
                worker.kill()
