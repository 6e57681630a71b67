"""``meshc serve FILE``: an HTTP gateway to the mesh's intake and terminal streams.

Callers in any language submit tasks (POST /tasks/INTAKE), read results (GET
/tasks/TRACE, ?wait=SECONDS to long-poll), follow a task's hops as server-sent
events (GET /tasks/TRACE/events) or receive results on a signed webhook. The API is
described by GET /openapi.json, generated from the mesh's types. The mesh's agents
run separately (`meshc run FILE`). Needs the extra: pip install 'meshc[serve]'.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

from meshc import extras
from meshc.commands.common import add_mesh_options, fail, guarded, load, server_url
from meshc.gateway.config import (
    TOKENS_ENV,
    GatewayConfig,
    GatewayConfigError,
    Limits,
    Tokens,
    Webhooks,
    check_webhook_url,
    load_secret,
    load_tokens,
)
from meshc.runtime import cluster
from meshc.runtime.connect import connect

NAME = "serve"
log = logging.getLogger("meshc.gateway")
LIMIT_OPTIONS: tuple[tuple[str, type, str, float, str], ...] = (
    ("--max-body", int, "BYTES", Limits.max_body, "largest request body"),
    ("--max-wait", float, "S", Limits.max_wait, "longest ?wait= and event stream, seconds"),
    ("--max-waits", int, "N", Limits.max_waits, "long-polls held open at once"),
    ("--max-streams", int, "N", Limits.max_streams, "event streams open at once"),
    ("--keep", float, "S", 86_400.0, "remember each submitted task this long, seconds"),
)


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="an HTTP gateway for the mesh's tasks", description=__doc__)
    add_mesh_options(p)
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free one)")
    auth = p.add_argument_group("authentication")
    auth.add_argument(
        "--tokens", metavar="PATH", help=f"bearer tokens, one per line (else {TOKENS_ENV})"
    )
    auth.add_argument("--no-auth", action="store_true", help="no authentication: local use only")
    hooks = p.add_argument_group("webhooks")
    hooks.add_argument("--webhook", metavar="URL", help="push every result of the mesh here")
    hooks.add_argument(
        "--webhook-allow",
        action="append",
        default=[],
        metavar="PREFIX",
        help="let callers name a per-task ?webhook= URL starting with PREFIX (repeatable)",
    )
    hooks.add_argument(
        "--webhook-secret-file",
        metavar="PATH",
        help="the HMAC signing secret (else MESHC_WEBHOOK_SECRET)",
    )
    hooks.add_argument(
        "--webhook-attempts", type=int, default=8, metavar="N", help="tries per result (8)"
    )
    hooks.add_argument(
        "--webhook-backoff", type=float, default=1.0, metavar="S", help="first retry after S s (1)"
    )
    limits = p.add_argument_group("limits")
    for option, kind, metavar, default, what in LIMIT_OPTIONS:
        limits.add_argument(
            option, type=kind, default=default, metavar=metavar, help=f"{what} (%(default)s)"
        )
    p.add_argument(
        "--consumer", metavar="NAME", help="this gateway's name in the results group (HOST:PORT)"
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--openapi", action="store_true", help="print the OpenAPI document and exit")
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    needs = extras.problem("serve", "the HTTP gateway")
    if needs:
        return fail(NAME, needs, 2)
    problem = _check_numbers(args)
    if problem:
        return fail(NAME, problem, 2)
    _, spec = load(args.file)
    if args.openapi:
        from meshc.gateway.openapi import dumps

        sys.stdout.write(dumps(spec, auth=not args.no_auth).decode() + "\n")
        return 0
    from meshc.gateway import runner

    try:
        tokens, hooks = _tokens(args), _webhooks(args)
        url = cluster.cli_url(lambda: server_url(args.redis), args.cluster, args.redis)
        connect(url).close()  # an unreachable server is one clear message, before listening
        sock = runner.bind(args.host, args.port)
    except GatewayConfigError as err:
        return fail(NAME, str(err), 2)
    config = GatewayConfig(spec, url, tokens, _limits(args), hooks, args.keep)
    where = runner.Listening(args.host, sock.getsockname()[1])
    _announce(config, where, args.host)
    consumer = args.consumer or f"{socket.gethostname()}:{where.port}"
    runner.serve(runner.server_for(config, consumer, args.access_log), sock)
    return 0


def _check_numbers(args: argparse.Namespace) -> str | None:
    for option, value in (("--max-body", args.max_body), ("--max-waits", args.max_waits),
                          ("--max-streams", args.max_streams),
                          ("--webhook-attempts", args.webhook_attempts)):  # fmt: skip
        if value < 1:
            return f"{option} must be at least 1"
    for option, seconds in (("--max-wait", args.max_wait), ("--keep", args.keep),
                            ("--webhook-backoff", args.webhook_backoff)):  # fmt: skip
        if not seconds > 0:
            return f"{option} must be more than 0 seconds"
    if not 0 <= args.port < 65536:
        return "--port must be between 0 and 65535"
    return None


def _tokens(args: argparse.Namespace) -> Tokens | None:
    if args.no_auth:
        if args.tokens:
            raise _usage("--no-auth and --tokens contradict each other")
        return None
    return load_tokens(args.tokens, os.environ)


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(args.max_body, args.max_wait, args.max_waits, args.max_streams)


def _webhooks(args: argparse.Namespace) -> Webhooks | None:
    if args.webhook is None and not args.webhook_allow:
        if args.webhook_secret_file:
            raise _usage("--webhook-secret-file without --webhook or --webhook-allow")
        return None
    url = check_webhook_url(args.webhook, "--webhook") if args.webhook else None
    for prefix in args.webhook_allow:
        check_webhook_url(prefix, "--webhook-allow")
    secret = load_secret(args.webhook_secret_file, os.environ)
    return Webhooks(secret, url, tuple(args.webhook_allow), args.webhook_attempts,
                    args.webhook_backoff)  # fmt: skip


def _usage(message: str) -> GatewayConfigError:
    return GatewayConfigError(message)


def _announce(config: GatewayConfig, where: Any, host: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    mesh = config.mesh
    intakes = ", ".join(f"POST {where.url}/tasks/{s}" for s in mesh.intake_streams())
    log.info("meshc serve: mesh %s; %s; API at %s/openapi.json", mesh.name, intakes, where.url)
    if config.tokens is None:
        exposed = host not in ("127.0.0.1", "localhost", "::1")
        log.warning(
            "AUTHENTICATION IS OFF (--no-auth): anyone who reaches %s can submit tasks and "
            "read every result%s",
            where.url,
            "; and it listens beyond this machine" if exposed else "",
        )
