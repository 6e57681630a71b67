"""Helpers of the gateway tests: a webhook receiver, SSE parsing, a small mesh."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from meshc.gateway import signing
from meshc.gateway.config import Tokens

TOKEN = "test-token-0123456789abcdef"
Start = Callable[..., Any]  # the start_gateway fixture: start(spec, url, **settings) -> URL
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = b"webhook-secret-0123456789"
TASK = {"doc_id": "d1", "chunk_id": 0, "text": "I has a apple. It was decided by the team."}

# A mesh no worker runs: its tasks stay in flight, its intake fills up.
IDLE_MESH = """\
mesh: idle
version: 3
types:
  Line: {id: str, text: str}
streams:
  i.in: {type: Line, max_backlog: 2}
  i.out: {type: Line, terminal: true}
agents:
  feed: {role: producer, writes: [i.in]}
  echo: {role: specialist, reads: [i.in], writes: [i.out], handler: idle_handlers:echo}
"""


def tokens() -> Tokens:
    return Tokens.of([TOKEN])


@dataclass
class Call:
    """One request the receiver got, and what it answered."""

    body: bytes
    headers: dict[str, str]
    status: int

    @property
    def delivery(self) -> str:
        return self.headers[signing.DELIVERY.lower()]

    def signed(self, secret: bytes = SECRET) -> bool:
        h = self.headers
        stamp, sig = h[signing.TIMESTAMP.lower()], h[signing.SIGNATURE.lower()]
        return signing.verify(secret, stamp, sig, self.body)


@dataclass
class Receiver:
    """A webhook endpoint on a free local port; ``answer(call_number_for_delivery)``
    decides the status of each request (200 unless told otherwise)."""

    answer: Callable[[int], int] = lambda n: 200
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.status < 300]

    def tries(self, delivery: str) -> int:
        with self.lock:
            return sum(c.delivery == delivery for c in self.calls)

    def _handle(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            seen = sum(c.headers.get("x-meshc-delivery") == headers.get("x-meshc-delivery")
                       for c in self.calls)  # fmt: skip
            status = self.answer(seen + 1)
            self.calls.append(Call(body, headers, status))
        return status


@contextlib.contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    """Serve ``receiver`` on a thread for the body of the block."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
            size = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(size)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(receiver._handle(body, headers))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs from the lines of a text/event-stream."""
    event, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield event, orjson.loads(data)
            event, data = "message", ""


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def cli(*args: str) -> Outcome:
    """``meshc ARGS`` in this process, its output captured."""
    import io

    from meshc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Outcome(code, out.getvalue(), err.getvalue())
