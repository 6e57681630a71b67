"""A local OpenAI-compatible chat-completions server for the LLM tests.

Deterministic: the reply to a request is decided by the next *mode* in ``script``
(then ``mode``), and an ``ok`` reply is ``reply(body)``, by default the JSON object
written in the prompt (so a test's prompt says what the model answers).
Every request is recorded with its arrival time, so tests can measure rate limits
and retry delays from the server's side.

Modes: ``ok``; ``429`` (with ``Retry-After``); ``500``; ``slow`` (an ``ok`` reply
after ``slow_seconds``); ``malformed`` (not JSON); ``wrong_type`` (JSON that does not
fit the type); ``echo_key`` (a 500 whose body repeats the Authorization header, as a
careless proxy might) and ``leak_reply`` (a reply that is not JSON and repeats it).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "429", "500", "slow", "malformed", "wrong_type", "echo_key", "leak_reply")


@dataclass
class Seen:
    """One request as the server received it."""

    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]
    mode: str


def echo(body: dict[str, Any]) -> str:
    """The JSON object in the first user message (the prompt; later ones are repairs):
    from its first ``{`` to its last ``}``."""
    text = [m for m in body["messages"] if m["role"] == "user"][0]["content"]
    return str(text[text.index("{") : text.rindex("}") + 1])


@dataclass
class FakeLLM:
    """The server's behaviour and what it saw; ``start()`` returns its base URL."""

    mode: str = "ok"
    script: deque[str] = field(default_factory=deque)
    reply: Callable[[dict[str, Any]], str] = echo
    retry_after: str = "1"
    slow_seconds: float = 1.0
    requests: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read ``requests`` instead."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def then(self, *modes: str) -> FakeLLM:
        """Answer the next requests with ``modes``, in order, then with ``mode``."""
        unknown = set(modes) - set(MODES)
        assert not unknown, f"unknown modes {unknown}"
        self.script.extend(modes)
        return self

    def times(self) -> list[float]:
        return [r.at for r in self.requests]

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        body = json.loads(http.rfile.read(int(http.headers["Content-Length"])))
        with self._lock:
            mode = self.script.popleft() if self.script else self.mode
            headers = {k.lower(): v for k, v in http.headers.items()}
            seen = Seen(time.monotonic(), http.path, headers, body, mode)
            self.requests.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, payload, headers = self._answer(seen)
            raw = json.dumps(payload).encode()
            http.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json"}.items():
                http.send_header(name, value)
            http.send_header("Content-Length", str(len(raw)))
            http.end_headers()
            http.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, seen: Seen) -> tuple[int, dict[str, Any], dict[str, str]]:
        mode, body = seen.mode, seen.body
        auth = seen.headers.get("authorization", "")
        if mode == "429":
            return 429, _error("rate limited", "rate_limit"), {"Retry-After": self.retry_after}
        if mode == "500":
            return 500, _error("upstream failed", "server_error"), {}
        if mode == "echo_key":
            return 500, _error(f"bad gateway for {auth}", "server_error"), {}
        if mode == "slow":
            time.sleep(self.slow_seconds)
        content = {
            "malformed": '{"n": 1, "text": "unterminated',
            "wrong_type": '{"unexpected": true}',
            "leak_reply": f"I cannot answer; your header was {auth}",
        }.get(mode)
        return 200, _completion(body, self.reply(body) if content is None else content), {}


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_chars = sum(len(m["content"]) for m in body["messages"])
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_chars // 4,
            "completion_tokens": len(content) // 4 + 1,
            "total_tokens": prompt_chars // 4 + len(content) // 4 + 1,
        },
    }
