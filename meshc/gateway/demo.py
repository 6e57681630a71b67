"""``meshc demo --serve``: the review mesh behind the gateway, and curl commands to try.

The commands are printed as one shell session a user can paste: the token in a
variable, the POST whose trace ``sed`` picks out of the answer, then the long-poll,
the event stream and the OpenAPI document of that same task. The token is made
fresh for each run, so the demo shows authentication on rather than off.
"""

from __future__ import annotations

import secrets
import shlex
import socket

import orjson
from meshc.codegen.build import Built
from meshc.demo import running_workers
from meshc.gateway import runner
from meshc.gateway.config import GatewayConfig, Tokens

INTAKE = "doc.review.tasks"
SAMPLE = {"doc_id": "demo", "chunk_id": 0, "text": "I has a apple. Their going home tomorow."}
BEGIN, END = "# --- try it (Ctrl-C stops the demo) ---", "# ---"


def commands(base: str, token: str) -> list[str]:
    """The shell lines to paste: submit, wait for the summary, follow, describe."""
    auth = '-H "Authorization: Bearer $TOKEN"'
    body = shlex.quote(orjson.dumps(SAMPLE).decode())
    pick = 'sed -E \'s/.*"trace":"([^"]+)".*/\\1/\''
    return [
        f"TOKEN={token}",
        f"TRACE=$(curl -s -X POST {base}/tasks/{INTAKE} {auth} "
        f"-H 'Content-Type: application/json' -d {body} | {pick})",
        f'curl -s -w "\\n" "{base}/tasks/$TRACE?wait=30" {auth}',
        f'curl -sN "{base}/tasks/$TRACE/events" {auth}',
        f'curl -s -w "\\n" {base}/openapi.json {auth}',
    ]


def serve_demo(built: Built, url: str, host: str, port: int) -> None:
    """Run the workers and the gateway until SIGINT/SIGTERM; print the commands."""
    spec = built.load_spec()
    token = secrets.token_urlsafe(24)
    config = GatewayConfig(spec, url, Tokens.of([token]))
    sock = runner.bind(host, port)
    where = runner.Listening(host, sock.getsockname()[1])
    server = runner.server_for(config, f"{socket.gethostname()}:{where.port}")
    with running_workers(spec, built, url):
        print(BEGIN, *commands(where.url, token), END, sep="\n", flush=True)
        runner.serve(server, sock)
