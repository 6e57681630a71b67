"""Entry points of generated packages: one agent replica, or the whole mesh supervised.

``python -m <pkg>.agents.<agent>`` calls :func:`agent_main`; ``python -m <pkg>``
calls :func:`mesh_main`, which starts every agent's replicas as processes and
restarts any that die. The server URL (with an agent's credentials when ACLs are on)
travels to a supervised worker on its stdin, never in its environment or on its
command line. Each replica has a stable consumer name (host, agent, replica number),
so the process that replaces a dead one finds what it held (``recovery``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from meshc.runtime import cluster, running
from meshc.runtime.connect import MeshOpsError, connect
from meshc.runtime.errors import ConfigError
from meshc.runtime.process import reload as reloading
from meshc.runtime.process.agent import RECOVER_ENV, run_agent
from meshc.runtime.process.consumers import start_reaper
from meshc.runtime.process.preflight import unresolved_handlers
from meshc.runtime.process.retention_loop import start_retention
from meshc.runtime.process.supervisor import (
    SECRET_ENV,
    Pool,
    SupervisorEvent,
    WorkerCommand,
    supervise,
)
from meshc.runtime.spec import MeshSpec

URL_ENV = "MESHC_WORKER_URL"
Metrics = tuple[str, int]  # where the Prometheus endpoint listens: host, port
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TAKE_OVER_HELP = (
    "claim streams another mesh owns on the server once that mesh has stopped (or its "
    "heartbeat is stale), and record this version even when its types differ"
)


def _logging(verbose: bool, prog: str) -> bool:
    """INFO by default; ``-v`` for DEBUG; ``MESHC_LOG_LEVEL`` (e.g. WARNING) overrides.
    False, after saying why, for a level logging does not know."""
    level = os.environ.get("MESHC_LOG_LEVEL", "DEBUG" if verbose else "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        print(f"{prog}: MESHC_LOG_LEVEL={level}: use DEBUG, INFO, WARNING or ERROR",
              file=sys.stderr)  # fmt: skip
        return False
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    return True


def agent_main(
    mesh: MeshSpec, agent: str, handler: Callable[..., Any] | None, argv: Sequence[str] | None
) -> int:
    """Run one replica of ``agent``; the process exit code."""
    parser = argparse.ArgumentParser(
        prog=f"{mesh.name}.{agent}",
        description=f"Run one replica of agent {agent} of mesh {mesh.name} until SIGTERM.",
    )
    parser.add_argument("--redis", help="server URL (else MESHC_WORKER_URL, REDIS_URL, embedded)")
    parser.add_argument("--consumer", help="consumer name (default: host-pid-random)")
    parser.add_argument("--partitions", help="partitions to serve, e.g. 0-7,12 (default: all)")
    parser.add_argument("--cluster", action="store_true", help="the URL is a cluster node's")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    if not _logging(args.verbose, f"{mesh.name}.{agent}"):
        return 2
    try:
        secret = sys.stdin.readline().strip() if os.environ.get(SECRET_ENV) == "1" else None
        url = args.redis or secret or os.environ.get(URL_ENV) or _resolve(start=False)
        url = cluster.as_cluster_url(url) if args.cluster else url
        parts = cluster.parse_partitions(args.partitions) if args.partitions else None
    except (MeshOpsError, ConfigError) as err:
        print(f"{mesh.name}.{agent}: {err}", file=sys.stderr)
        return 2
    return run_agent(mesh, agent, handler, redis_url=url, consumer=args.consumer, partitions=parts)


def _resolve(start: bool, explicit: str | None = None, durability: str | None = None) -> str:
    from meshc.runtime.process.server import resolve_url

    return resolve_url(explicit, start=start, durability=durability)  # type: ignore[arg-type]


def worker_commands(
    mesh: MeshSpec,
    package: str,
    url_for: Callable[[str], str],
    extra_env: Mapping[str, str] | None = None,
    partitions: Sequence[int] | None = None,
) -> list[WorkerCommand]:
    """One command per replica of every agent that reads something (serving only
    ``partitions`` when given: another machine serves the rest)."""
    served = ["--partitions", ",".join(map(str, partitions))] if partitions else []
    host = socket.gethostname()
    commands = []
    for name in sorted(mesh.agents):
        spec = mesh.agents[name]
        if not spec.reads:
            continue
        env = {**(extra_env or {}), RECOVER_ENV: "1"}
        for replica in range(spec.policy.replicas):
            consumer = f"{host}-{name}-{replica}"
            commands.append(
                WorkerCommand(
                    name=f"{name}#{replica}" if spec.policy.replicas > 1 else name,
                    argv=[
                        sys.executable,
                        "-m",
                        f"{package}.agents.{name}",
                        "--consumer",
                        consumer,
                        *served,
                    ],  # fmt: skip
                    env=env,
                    secret=url_for(name),
                    agent=name,
                )
            )
    return commands


def mesh_main(mesh: MeshSpec, package: str, argv: Sequence[str] | None) -> int:
    """Start and supervise every agent of the mesh until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {package}",
        description=f"Run every agent of mesh {mesh.name}, supervised, until SIGTERM.",
    )
    parser.add_argument("--redis", help="server URL (else REDIS_URL, else the embedded server)")
    parser.add_argument(
        "--durability",
        choices=("default", "strict"),
        default=None,
        help="embedded server fsync: everysec (default) or always (strict); kept for later "
        "starts until changed",
    )
    parser.add_argument("--cluster", action="store_true", help="the URL is a cluster node's")
    parser.add_argument("--take-over", action="store_true", help=TAKE_OVER_HELP)
    add_metrics_options(parser)
    args = parser.parse_args(argv)
    if not _logging(False, f"python -m {package}"):
        return 2
    problems = unresolved_handlers(mesh)  # before any server or worker starts
    for problem in problems:
        print(f"{package}: {problem}", file=sys.stderr)
    if problems:
        return 1
    try:
        url = cluster.cli_url(
            lambda: _resolve(start=True, explicit=args.redis, durability=args.durability),
            args.cluster,
            args.redis,
        )
        if cluster.is_cluster_url(url):
            cluster.require_partitions(mesh, url)
    except MeshOpsError as err:
        print(f"{package}: {err}", file=sys.stderr)
        return 2
    try:
        return run_mesh(mesh, package, url, take_over=args.take_over, metrics=metrics_of(args))
    except MeshOpsError as err:  # another mesh owns its streams; the metrics port is taken
        print(f"{package}: {err}", file=sys.stderr)
        return 1


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-host``, shared by ``meshc run``."""
    parser.add_argument(
        "--metrics-port",
        metavar="N",
        type=_port,
        help="serve Prometheus metrics on this port at /metrics (0: any free port, "
        "logged); needs pip install 'meshc[metrics]'",
    )
    parser.add_argument(
        "--metrics-host",
        metavar="HOST",
        default="127.0.0.1",
        help="the address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 "
        "for every interface)",
    )


def metrics_of(args: argparse.Namespace) -> Metrics | None:
    port: int | None = args.metrics_port
    return None if port is None else (str(args.metrics_host), port)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def run_mesh(
    mesh: MeshSpec,
    package: str,
    url: str,
    *,
    url_for: Callable[[str], str] | None = None,
    operator_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    on_event: Callable[[SupervisorEvent], None] | None = None,
    stop: threading.Event | None = None,
    partitions: Sequence[int] | None = None,
    record: bool = True,
    file: str = "",
    take_over: bool = False,
    loader: Loader | None = None,
    reload: threading.Event | None = None,
    metrics: Metrics | None = None,
) -> int:
    """Supervise one process per replica until a signal (or ``stop``, from another thread).

    With ``record`` (not on a cluster) the mesh is first recorded on the server as
    running from ``file`` and claims its streams (``running``): OwnershipError when
    another mesh owns some, unless ``take_over`` and that mesh is gone. With ``loader``,
    SIGHUP (or ``reload``) loads the mesh again and restarts only what changed
    (``reload``).

    ``url_for`` gives each agent its own URL (with its credentials when ACLs are on);
    ``operator_url`` (default ``url``) is the one the retention loop trims with, which
    runs beside the workers when a stream declares a retention, and the one stale
    consumers are removed with (:mod:`~meshc.runtime.process.consumers`); ``extra_env`` is added
    to every worker's environment (PYTHONPATH, for instance); ``partitions`` narrows
    every worker to those partitions. A single-partition mesh is refused on a cluster
    here, before any worker starts (:class:`cluster.PartitionsError`). ``metrics``
    (host, port) serves Prometheus metrics while the mesh runs (``ops.metrics``).
    """
    if cluster.is_cluster_url(url):
        cluster.require_partitions(mesh, url)
    beat = _record(mesh, url, file, take_over) if record else None
    endpoint = None
    try:
        if metrics is not None:
            # The one import outside the runtime (docs/architecture.md): the scrape-time
            # gauges are the reads of `meshc status`, which live with the operator's tools.
            from meshc.ops.metrics import MetricsEndpoint

            endpoint = MetricsEndpoint(mesh, operator_url or url, *metrics)
            extra_env = {**(extra_env or {}), **endpoint.env}
            on_event = endpoint.watch(on_event)
            loader = _with_env(loader, endpoint.env)
        commands = worker_commands(
            mesh, package, url_for or (lambda _agent: url), extra_env, partitions
        )
        log = logging.getLogger("meshc.run")
        log.info("mesh %s v%d: %d worker processes", mesh.name, mesh.version, len(commands))
        for command in commands:
            log.debug("worker %s: %s", command.name, " ".join(command.argv))
        live = _Live(mesh, url, operator_url or url, loader, record)
        reaper = start_reaper(mesh, operator_url or url)  # removes consumers long gone
        try:
            return supervise(commands, on_event=on_event, stop=stop,
                             on_reload=live.reload if loader else None, reload=reload)  # fmt: skip
        finally:
            for loop in (live.retention, reaper):
                if loop is not None:
                    loop.stop()
    finally:
        if endpoint is not None:
            endpoint.close()
        if beat is not None:
            beat.stop()
            beat.client.close()


def _with_env(loader: Loader | None, env: Mapping[str, str]) -> Loader | None:
    """``loader`` whose workers also get ``env`` (the metrics folder: reloaded workers
    report to the same endpoint)."""
    if loader is None:
        return None
    load = loader

    def again() -> tuple[MeshSpec, str, reloading.Commands]:
        mesh, file, commands = load()

        def with_env(m: MeshSpec, agents: Sequence[str]) -> list[WorkerCommand]:
            return [replace(c, env={**c.env, **env}) for c in commands(m, agents)]

        return mesh, file, with_env

    return again


Loader = Callable[[], tuple[MeshSpec, str, "reloading.Commands"]]


class _Live:
    """The version a ``run_mesh`` runs now, its retention loop, and how it reloads."""

    def __init__(self, mesh: MeshSpec, url: str, operator_url: str, loader: Loader | None,
                 record: bool) -> None:  # fmt: skip
        self.mesh, self.url, self.operator_url = mesh, url, operator_url
        self.loader, self.record = loader, record
        self.retention = start_retention(mesh, operator_url)  # trims while the mesh runs

    def reload(self, pool: Pool, stop: threading.Event) -> None:
        """Load the mesh again (``loader``) and move the workers to it; a version that
        cannot be loaded or does not fit the server's record is refused, logged, and
        the running one goes on."""
        log = logging.getLogger("meshc.reload")
        assert self.loader is not None
        try:
            new, file, commands = self.loader()
        except Exception as exc:  # an invalid file, a handler that does not import...
            log.error("reload refused, %s keeps running v%d: %s", self.mesh.name,
                      self.mesh.version, exc)  # fmt: skip
            return
        if new.name != self.mesh.name:
            log.error("reload refused: the file now declares mesh %s, not %s (a stream "
                      "belongs to one mesh)", new.name, self.mesh.name)  # fmt: skip
            return
        with connect(self.url) as client:
            if self.record and not cluster.is_cluster_url(self.url):
                problems = running.version_problems(
                    running.read_record(client, new.name), new, *_uses(new)
                )
                if problems:
                    how = "`meshc rollout OLD NEW --apply` moves the record when the streams allow"
                    log.error("reload refused: %s; %s", "; ".join(problems), how)
                    return
                running.claim(client, new, running.record_fields(new, file))
            reloading.apply(pool, client, self.mesh, new, commands, stop)
            if self.record and not stop.is_set():
                running.mark_loaded(client, new)
        self.mesh = new
        if self.retention is not None:
            self.retention.stop()
        self.retention = start_retention(new, self.operator_url)


def _uses(mesh: MeshSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    reads = tuple(sorted({s for a in mesh.agents.values() for s in a.reads}))
    writes = tuple(sorted({s for a in mesh.agents.values() for s in a.writes}))
    return reads, writes


def _record(mesh: MeshSpec, url: str, file: str, take_over: bool) -> running.Heartbeat | None:
    """Claim the mesh's streams and record it as running (not on a cluster: the keys
    of the claim lie in different slots); its heartbeat, or None."""
    if cluster.is_cluster_url(url):
        return None
    client = connect(url)
    problems = running.version_problems(running.read_record(client, mesh.name), mesh, *_uses(mesh))
    if problems and not take_over:
        client.close()
        raise running.OwnershipError(
            f"mesh {mesh.name} v{mesh.version} does not fit the version recorded on this "
            f"server: {'; '.join(problems)}. Move to it with `meshc rollout OLD NEW --apply` "
            "(it checks what the streams still hold), or run with --take-over once the "
            "streams hold nothing of the old version"
        )
    path = os.path.abspath(file) if file else ""
    try:
        running.claim(client, mesh, running.record_fields(mesh, path), take_over=take_over)
        running.mark_loaded(client, mesh)
    except BaseException:
        client.close()
        raise
    return running.Heartbeat(client, mesh.name)
