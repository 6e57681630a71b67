"""A throw-away Valkey for tests: its own temporary folder, a free port, no persistence.

Unlike the working folder's embedded server (``meshc server``), this one belongs to
the test run: it is a child process, writes nothing outside its folder, and is killed
and removed at the end, so a test never touches the data of a mesh the user runs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from meshc.runtime.process.server import ServerError, find_binary, free_port

START_TIMEOUT = 10.0


class TestServer:
    """``with TestServer() as url:`` a fresh server for the block."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, folder: Path | None = None) -> None:
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="meshc-test-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        port = free_port()
        argv = [
            find_binary(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(self.folder / "server.log"),
        ]  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        assert self.proc is not None
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(f"the test server exited with code {self.proc.returncode}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.01)
        finally:
            client.close()
        self.stop()
        raise ServerError(f"the test server did not answer within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
