"""Fault injection inside worker processes (test-only): the review mesh's own handlers,
wrapped so a worker can SIGKILL itself at a chosen point of its loop.

The chaos mesh (``bench/chaos.py``) names these wrappers as its handlers, so every
worker process imports this module. With ``MESHC_FAULTS`` unset it is a pass-through.
With ``MESHC_FAULTS=<dir>``, the harness *arms* a fault by creating an empty file
``<dir>/armed/<point>@<agent>.<n>``. The first worker of that agent that reaches
``point`` claims the file with an atomic ``rename`` into ``<dir>/fired/`` (so one armed
fault fires exactly once, in one process), writes down where it was as one JSON line
in that file, and acts:

``read``     SIGKILL at the start of the handler call: the batch was read (XREADGROUP or
             XAUTOCLAIM) and validated, no handler output exists yet.
``handled``  SIGKILL after the real handler returned, before the commit script is sent.
``torn``     SIGKILL with only the first half of a commit script's request (COMMIT,
             JOIN_STORE or JOIN_EMIT) written to the socket: the server sees a
             truncated command, then the connection close; the script never runs.
``commit``   SIGKILL right after the whole request of a commit script was written and
             drained to the socket, before its reply is read: the worker can never
             know whether it ran (it does: the server still reads and runs it).
             The server runs a script atomically, so "inside the commit" means these
             two windows, the only ones a client has.
``stall``    no kill: the handler sleeps ``MESHC_FAULTS_STALL`` seconds (longer than the
             visibility timeout), so another replica reclaims the batch while this
             one still works on it; both finish, one commit must be dropped.

SIGKILL gives no chance to clean up: no ``finally``, no commit, no goodbye to the server.
Worker logs go to ``<dir>/workers.log`` so the harness can count reconnects, reclaims
and dropped duplicate commits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshc.runtime import scripts
from meshc.runtime.builtins import fanout as _fanout
from redis.asyncio import connection as _connection

from meshc.examples.review.clarity import clarity as _clarity
from meshc.examples.review.grammar import grammar as _grammar
from meshc.examples.review.structure import structure as _structure
from meshc.examples.review.summary import summarize as _summarize
from meshc.examples.review.tone import tone as _tone

FAULTS_ENV = "MESHC_FAULTS"
STALL_ENV = "MESHC_FAULTS_STALL"
POINTS = ("read", "handled", "torn", "commit", "stall")
_SCRIPTS = {
    scripts.commit.sha: "COMMIT",
    scripts.join_store.sha: "JOIN_STORE",
    scripts.join_emit.sha: "JOIN_EMIT",
}
_SOURCES = {s.source: name for s, name in ((scripts.commit, "COMMIT"),
                                           (scripts.join_store, "JOIN_STORE"),
                                           (scripts.join_emit, "JOIN_EMIT"))}  # fmt: skip

_root = Path(os.environ[FAULTS_ENV]) if os.environ.get(FAULTS_ENV) else None
_lock = threading.Lock()
# Workers run as ``python -m <pkg>.agents.<agent>``: argv[0] is that module's file.
_agent = Path(sys.argv[0]).stem
_handled: dict[str, int] = {}  # entry id -> attempt of its last call in this process


def _claim(point: str) -> Path | None:
    """The armed fault for ``point`` of this agent, moved to ``fired/``; None if none."""
    if _root is None:
        return None
    prefix = f"{point}@{_agent}."
    try:
        armed = [n for n in os.listdir(_root / "armed") if n.startswith(prefix)]
    except FileNotFoundError:
        return None
    for name in armed:
        fired = _root / "fired" / name
        try:
            os.rename(_root / "armed" / name, fired)
        except FileNotFoundError:  # another replica claimed it first
            continue
        return fired
    return None


def _record(fired: Path, **where: Any) -> None:
    line = json.dumps({"pid": os.getpid(), "agent": _agent, "time": time.time(), **where})
    with open(fired, "a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached: SIGKILL cannot be caught


def _wrap(agent: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def faulty(payload: Any, ctx: Any) -> Any:
        where = {"entry": ctx.entry_id, "attempt": ctx.attempt, "trace": ctx.trace}
        fired = _claim("read")
        if fired is not None:
            _record(fired, point="read", **where)
            _die()
        fired = _claim("stall")
        if fired is not None:
            _record(fired, point="stall", **where)
            time.sleep(float(os.environ.get(STALL_ENV, "3")))
        result = handler(payload, ctx)
        with _lock:
            _handled[ctx.entry_id] = ctx.attempt
        fired = _claim("handled")
        if fired is not None:
            _record(fired, point="handled", **where)
            _die()
        return result

    faulty.__name__ = faulty.__qualname__ = agent
    return faulty


def _script_name(args: tuple[Any, ...]) -> str | None:
    if len(args) < 2:
        return None
    command = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    body = args[1].decode() if isinstance(args[1], bytes) else str(args[1])
    if command.upper() == "EVALSHA":
        return _SCRIPTS.get(body)
    if command.upper() == "EVAL":
        return _SOURCES.get(body)
    return None


def _script_entries(script: str, args: tuple[Any, ...]) -> list[str]:
    """The input entry ids a commit script call settles, read from its arguments
    (layouts in meshc/runtime/scripts.py): COMMIT's records, a JOIN_EMIT's parents."""
    words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
    argv = words[3 + int(words[2]) :]
    if script == "JOIN_EMIT":
        i, ids = 3 + 2 * int(argv[2]), []
        while i < len(argv):
            ids.append(argv[i + 5])
            i += 10 + 2 * int(argv[i + 9])  # ... took traceparent n (out data)*n
        return ids
    if script != "COMMIT":
        return []
    i, ids = 3 + 2 * int(argv[2]), []
    while i < len(argv):
        kind = argv[i]
        if kind == "r":
            count = int(argv[i + 4])
            ids += [argv[i + 5 + 4 * k] for k in range(count)]
            i += 5 + 4 * count
        elif kind == "o":
            ids.append(argv[i + 2])
            i += 7 + 2 * int(argv[i + 6])
        elif kind == "h":  # 'o' plus header fields of its own (task fields, ...)
            ids.append(argv[i + 2])
            j = i + 7 + 2 * int(argv[i + 6])
            i = j + 1 + 2 * int(argv[j])
        elif kind == "f":
            ids.append(argv[i + 2])
            j, n = i + 4, int(argv[i + 3])
            for _ in range(n):
                j += 2 + int(argv[j + 1])
            i = j
        else:  # 'p': a failed call handed to the retry consumer
            i += 4
    return ids


async def _will_run(conn: Any, args: tuple[Any, ...]) -> bool:
    """Whether the server runs this request, so that killing the worker now tests a
    commit the worker cannot know the fate of. Not so after a server restart: on a
    connection opened before it the request went into a dead socket (the server
    answers with a reset), and an EVALSHA finds no script (NOSCRIPT; the worker sends
    it again as EVAL). Asked on a connection of its own, after a moment for a reset."""
    await asyncio.sleep(0.05)
    reader = conn._reader
    if reader is None or reader.at_eof() or reader.exception() is not None:
        return False
    command = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    if command.upper() != "EVALSHA":
        return True
    import redis

    with redis.Redis(host=conn.host, port=conn.port) as probe:
        return bool(probe.script_exists(args[1])[0])


def _install_commit_hook() -> None:
    """Wrap the asyncio connection's ``send_command`` around commit scripts: ``torn``
    writes half of the request and dies; ``commit`` dies once all of it is written and
    drained to the socket, before the reply is read."""
    owner = next(c for c in _connection.Connection.__mro__ if "send_command" in c.__dict__)
    original = owner.send_command

    async def send_command(self: Any, *args: Any, **kwargs: Any) -> None:
        script = _script_name(args)
        if script is None:
            await original(self, *args, **kwargs)
            return
        with _lock:  # the entries this very call commits (a retried call: the same ones)
            entries = [(i, _handled[i]) for i in _script_entries(script, args) if i in _handled]
        fired = _claim("torn")
        if fired is not None:
            if not self.is_connected:
                await self.connect()
            request = b"".join(self.pack_command(*args))
            _record(fired, point="torn", script=script, entries=entries, bytes=len(request))
            self._writer.write(request[: len(request) // 2])
            await self._writer.drain()
            _die()
        await original(self, *args, **kwargs)
        if not await _will_run(self, args):
            return  # not a commit the server runs: let a later one take the fault
        fired = _claim("commit")
        if fired is not None:
            _record(fired, point="commit", script=script, entries=entries)
            _die()

    owner.send_command = send_command  # type: ignore[method-assign]


def _install_logging() -> None:
    """Worker logs to ``<dir>/workers.log`` (root handler first, so the worker's own
    ``basicConfig`` adds none and the console stays quiet)."""
    if _root is None:
        return
    handler = logging.FileHandler(_root / "workers.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"%(asctime)s {os.getpid()} %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


if _root is not None:
    _install_logging()
    _install_commit_hook()

grammar = _wrap("grammar", _grammar)
clarity = _wrap("clarity", _clarity)
tone = _wrap("tone", _tone)
structure = _wrap("structure", _structure)
fanout = _wrap("coordinator", _fanout)
summarize = _wrap("aggregator", _summarize)
