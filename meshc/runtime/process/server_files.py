"""The files of a folder's embedded server in ``<folder>/.meshc``, private to their owner.

The folder holds the server's data (the append-only file), its log, its password
(``server.pass``), its users (``users.acl``), the per-agent secrets of ``meshc run
--acl`` and ``server.json``. Whoever reads them can read and rewrite every stream, so
the folder is 0700 and every file meshc writes there is 0600; the server itself runs
with umask 077, so what it writes (the AOF, a saved ``users.acl``) is private too.

``server.json`` records the last server of the folder (``{"url", "pid",
"durability"}``; the URL carries no password) and outlives it: a restart reads the
port and the durability from it, so workers that retry the old address find the new
server, and ``--durability strict`` stays in force until it is changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Durability = Literal["default", "strict"]
STATE_DIR = ".meshc"
RECORD = "server.json"
PASSWORD = "server.pass"
USERS = "users.acl"
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def state_dir(folder: Path | str | None = None) -> Path:
    """``<folder>/.meshc``: the embedded server's data, log, lock and ``server.json``."""
    return Path(folder if folder is not None else Path.cwd()).resolve() / STATE_DIR


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700), or take group and other rights away from an old one."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)
    return path


def tighten(state: Path) -> None:
    """Remove group and other rights from everything under ``state``: folders and files
    made by an older meshc (0755 and 0644) or by a tool with a looser umask."""
    for root, dirs, files in os.walk(state):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):  # a file that vanished meanwhile
                mode = os.lstat(path).st_mode
                if mode & 0o077 and not os.path.islink(path):
                    os.chmod(path, mode & 0o700)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to a 0600 file: no reader sees half of it, nobody else
    ever sees it (the temporary file is created 0600, not chmod-ed afterwards)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # an older temporary file may have other bits
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def open_private(path: Path) -> int:
    """A file descriptor appending to ``path`` (the log, the lock), created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd


# -- the record of the last server --------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What ``server.json`` says about the folder's last server (perhaps stopped)."""

    address: str  # redis://127.0.0.1:PORT, without the password
    pid: int
    durability: Durability = "default"

    @property
    def port(self) -> int:
        return port_of(self.address)


def port_of(address: str) -> int:
    """The port of ``redis://host:PORT[/db]``; ValueError when it has none."""
    port = urlsplit(address).port
    if port is None:
        raise ValueError(f"no port in {address!r}")
    return port


def read_record(state: Path) -> Record | None:
    """``server.json``, or None when it is missing or not what meshc writes."""
    try:
        raw = json.loads((state / RECORD).read_text(encoding="utf-8"))
        record = Record(str(raw["url"]), int(raw["pid"]), _durability(raw.get("durability")))
        port_of(record.address)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _durability(value: object) -> Durability:
    return "strict" if value == "strict" else "default"


def write_record(state: Path, record: Record) -> None:
    body = {"url": record.address, "pid": record.pid, "durability": record.durability}
    write_private(state / RECORD, json.dumps(body) + "\n")


# -- the password and the users -------------------------------------------------------------


def read_password(state: Path) -> str:
    """The server's password, or "" when the folder has none yet."""
    try:
        return (state / PASSWORD).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def server_password(state: Path) -> str:
    """The server's password, generated (256 random bits, hex) the first time."""
    password = read_password(state)
    if not password:
        password = secrets.token_hex(32)
        write_private(state / PASSWORD, password + "\n")
    return password


def write_users(state: Path, password: str) -> Path:
    """``users.acl`` with ``default`` as the superuser that needs ``password``.

    Only the password's SHA-256 is written, so the file, unlike a ``requirepass`` on
    the command line, shows nobody the password. The users that ``meshc run --acl``
    saved there (``ACL SAVE``) are kept, so they survive a restart of the server.
    """
    path = state / USERS
    try:
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and line.split()[:2] != ["user", "default"]
        ]
    except OSError:
        kept = []
    digest = hashlib.sha256(password.encode()).hexdigest()
    write_private(path, "\n".join([f"user default on #{digest} ~* &* +@all", *kept]) + "\n")
    return path


@contextlib.contextmanager
def locked(state: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``.meshc/server.lock`` (released on exit or crash)."""
    private_dir(state)
    with os.fdopen(open_private(state / "server.lock"), "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
