"""Run the gateway under uvicorn: in the foreground (``meshc serve``) or on a thread
(``meshc demo --serve``, tests and the benchmark, which need the port while it runs).

The listening socket is bound here, before uvicorn starts, so a port that is taken
is one clear error (:class:`PortInUse`) instead of uvicorn's log line and exit, and
port 0 gives a free port whose number the caller learns at once.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from meshc.gateway.app import create_app
from meshc.gateway.config import GatewayConfig, GatewayConfigError

START_TIMEOUT = 30.0
BACKLOG = 2048
SWITCH_INTERVAL_S = 0.0005


class PortInUse(GatewayConfigError):
    """Raised when the address to listen on cannot be bound."""


@dataclass(frozen=True)
class Listening:
    """Where the gateway answers."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP,
    # and accepted sockets copy the listener's; with Nagle on, every answer waited for
    # the client's delayed ACK (about 40 ms per request, measured).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise PortInUse(
            f"cannot listen on {host}:{port}: {err.strerror}; "
            "choose another --port (0: any free one)"
        ) from None
    sock.listen(BACKLOG)  # callers that come before uvicorn runs wait in the queue
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the signal that stopped it: a gateway stopped
    by SIGTERM or Ctrl-C has shut down cleanly and exits 0, as ``meshc run`` does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def server_for(config: GatewayConfig, consumer: str, access_log: bool = False) -> uvicorn.Server:
    app = create_app(config, consumer)
    settings = uvicorn.Config(
        app, lifespan="on", access_log=access_log, log_level="info", timeout_graceful_shutdown=5
    )
    return _Server(settings)


def serve(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (uvicorn handles both).

    A submission runs ``MeshClient`` on a worker thread, and each of its round trips
    ends with that thread waiting for the GIL while the event loop thread runs: up to
    the switch interval (5 ms by default) each time. In this process of its own the
    interval is cut to 0.5 ms: in two A/B pairs on two busy cores (load 4-9) the
    median POST went from 26 to 11 ms and from 40 to 21 ms.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    server.run(sockets=[sock])


Running = contextlib.AbstractContextManager[Listening]


@contextlib.contextmanager
def running(
    config: GatewayConfig, host: str = "127.0.0.1", port: int = 0, consumer: str | None = None
) -> Iterator[Listening]:
    """The gateway on a thread for the body of the block; stopped after it."""
    sock = bind(host, port)
    where = Listening(host, sock.getsockname()[1])
    server = server_for(config, consumer or f"{socket.gethostname()}:{where.port}")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield where
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise GatewayConfigError("the gateway stopped while starting (see the log above)")
        if time.monotonic() > deadline:
            raise GatewayConfigError(f"the gateway did not start within {START_TIMEOUT:g} s")
        time.sleep(0.01)
