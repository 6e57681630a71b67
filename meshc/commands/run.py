"""``meshc run FILE``: start every agent of a mesh as processes and keep them running.

The mesh is compiled into this folder's cache (``.meshc/build/``), so what runs is what
``meshc compile`` writes. Every handler is imported first, as ``meshc validate
--resolve`` does: one that cannot be imported or called is reported (MESH301-303)
and nothing starts. Each replica is a process ``python -m <mesh>.agents.<agent>``;
a worker that dies is restarted with backoff and the restart is reported on stderr.
Ctrl-C or SIGTERM stops every worker after it commits what it holds in flight.
With ``--acl`` it also puts the mesh's users and scripts back whenever the server
loses them (a restart), within seconds.

The mesh is recorded on the server, and its streams claimed: another mesh declaring
one of them is refused (``--take-over`` once that mesh has stopped). SIGHUP (or, with
``--watch``, a change of the file) reloads it: only the agents whose spec changed
restart, new agents start, removed ones stop once what they read is drained
(docs/operations.md, "Reloading meshc run").
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshc.commands.common import add_mesh_options, fail, guarded, load, server_url
from meshc.ops.acl import (
    DEFAULT_SECRET_FILE,
    DEFAULT_USER,
    AgentUrls,
    admin_url,
    enable,
    env_name,
)
from meshc.ops.acl_watch import start_watch
from meshc.runtime import cluster, running
from meshc.runtime.connect import connect, redact
from meshc.runtime.process.launch import (
    LOG_FORMAT,
    TAKE_OVER_HELP,
    Loader,
    add_metrics_options,
    metrics_of,
    run_mesh,
    worker_commands,
)
from meshc.runtime.process.reload import Commands
from meshc.runtime.process.supervisor import SupervisorEvent, WorkerCommand
from meshc.runtime.spec import MeshSpec

LEVEL_ENV = "MESHC_LOG_LEVEL"
log = logging.getLogger("meshc.run")


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run every agent of a mesh, supervised", description=__doc__)
    add_mesh_options(p)
    p.add_argument(
        "--durability",
        choices=("default", "strict"),
        default=None,
        help="embedded server fsync: everysec (default) or always (strict); kept for every "
        "later start of the folder's server until changed (default: as last chosen)",
    )
    p.add_argument(
        "--acl",
        action="store_true",
        help="apply the compiled ACL rules: one server user per agent, plus an operator; "
        "each worker connects as its own user",
    )
    p.add_argument(
        "--acl-secrets",
        metavar="PATH",
        type=Path,
        default=DEFAULT_SECRET_FILE,
        help="JSON {user: password}; created with random passwords when absent "
        "(MESHC_ACL_PASSWORD_<USER> overrides). Default: .meshc/acl-secrets.json",
    )
    p.add_argument("--cluster", action="store_true", help=cluster.CLI_HELP)
    p.add_argument("--take-over", action="store_true", help=TAKE_OVER_HELP)
    p.add_argument(
        "--watch",
        action="store_true",
        help="reload when the mesh file changes, as on SIGHUP: restart only the agents "
        "whose spec changed, start new ones, stop removed ones once drained",
    )
    p.add_argument(
        "--partitions",
        metavar="LIST",
        help="serve only these partitions, e.g. 0-7 (another machine runs the rest)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="DEBUG logs from the supervisor and every worker (else INFO, or the level "
        "MESHC_LOG_LEVEL names)",
    )
    add_metrics_options(p)
    p.set_defaults(handler=guarded("run", run))


def run(args: argparse.Namespace) -> int:
    level = "DEBUG" if args.verbose else os.environ.get(LEVEL_ENV, "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        return fail("run", f"{LEVEL_ENV}={level}: use DEBUG, INFO, WARNING or ERROR", 2)
    built, spec = load(args.file, resolve=True)  # before any worker or server starts
    url = cluster.cli_url(
        lambda: server_url(args.redis, start=True, durability=args.durability),
        args.cluster,
        args.redis,
    )
    parts = cluster.parse_partitions(args.partitions, spec.partitions) if args.partitions else None
    if args.acl and cluster.is_cluster_url(url):
        return fail(
            "run",
            "--acl on a cluster is not supported yet: each node keeps its own users, so "
            "apply the compiled rules (acl.py) on every node, then run without --acl",
            2,
        )
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    if args.durability and (args.redis or os.environ.get("REDIS_URL")):
        log.warning(
            "--durability applies to the embedded server only; %s keeps its own settings",
            redact(url),
        )
    log.info("mesh %s from %s on %s; Ctrl-C stops it", spec.name, args.file, redact(url))
    url_for, operator_url, watch = None, url, None
    if args.acl:
        users = enable(url, built.package, args.acl_secrets)
        url_for, operator_url = users.for_agent, users.operator_url
        _report_acl(users, args.acl_secrets)
        watch = start_watch(url, built.package, args.acl_secrets, users)
        url = admin_url(url, args.acl_secrets)  # `default` is locked now: log in as it
    env = built.worker_env() | ({LEVEL_ENV: "DEBUG"} if args.verbose else {})
    reload = threading.Event()
    loader = _loader(args, url, parts)
    if args.watch:
        _watch(args.file, reload)
    try:
        return run_mesh(
            spec,
            built.package,
            url,
            url_for=url_for,
            operator_url=operator_url,
            extra_env=env,
            on_event=_quiet,
            partitions=parts,
            file=args.file,
            take_over=args.take_over,
            loader=loader,
            reload=reload,
            metrics=metrics_of(args),
        )
    finally:
        if watch is not None:
            watch.stop()


def _loader(args: argparse.Namespace, url: str, parts: list[int] | None) -> Loader:
    """What a reload runs: the mesh file the server's record names (``meshc rollout
    --apply`` points it at the new version), else this run's own, compiled afresh, with
    the commands of its workers (ACL users applied again when ``--acl``)."""

    def load_again() -> tuple[MeshSpec, str, Commands]:
        file = _recorded_file(url, args.file)
        log.info("reloading %s", file)
        built, spec = load(file, resolve=True)
        url_for = None
        if args.acl:
            url_for = enable(url, built.package, args.acl_secrets).for_agent
        env = built.worker_env() | ({LEVEL_ENV: "DEBUG"} if args.verbose else {})

        def commands(mesh: MeshSpec, agents: Sequence[str]) -> list[WorkerCommand]:
            every = worker_commands(mesh, built.package, url_for or (lambda _a: url), env, parts)
            return [c for c in every if c.agent in agents]

        return spec, os.path.abspath(file), commands

    return load_again


def _recorded_file(url: str, fallback: str) -> str:
    """The file the server's record of this mesh names, when it exists here."""
    try:
        _, spec = load(fallback)
        with connect(url) as client:
            recorded = running.read_record(client, spec.name).get("file", "")
    except Exception:  # the file itself is broken: the reload reports it
        return fallback
    return recorded if recorded and os.path.exists(recorded) else fallback


def _watch(file: str, reload: threading.Event) -> None:
    """Set ``reload`` whenever ``file`` changes (its mtime or size), checked every second."""

    def stamp() -> tuple[float, int]:
        try:
            st = os.stat(file)
        except OSError:
            return (0.0, -1)
        return (st.st_mtime, st.st_size)

    def loop() -> None:
        seen = stamp()
        while True:
            time.sleep(1.0)
            now = stamp()
            if now != seen and now[1] >= 0:
                seen = now
                log.info("%s changed: reloading", file)
                reload.set()

    threading.Thread(target=loop, name="meshc-watch", daemon=True).start()


def _report_acl(users: AgentUrls, secrets: Path) -> None:
    log = logging.getLogger("meshc.run")
    log.info(
        "ACLs on: one user per agent; operator user %s (password in %s or %s)",
        users.operator_user, secrets, env_name(users.operator_user),
    )  # fmt: skip
    if users.locked_default:
        log.warning(
            "the server's default user let anyone in without a password: it has one now "
            "(in %s as \"default\", or %s)", secrets, env_name(DEFAULT_USER),
        )  # fmt: skip
    if not users.saved:
        log.warning(
            "the server has no ACL file: its users last until it restarts; while this "
            "command runs it applies them again after a restart"
        )


def _quiet(_event: SupervisorEvent) -> None:
    """The supervisor logs every event itself; a second report would double each line."""
