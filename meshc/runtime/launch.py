"""Entry points of generated packages: one agent replica, or the whole mesh supervised.

``python -m <pkg>.agents.<agent>`` calls :func:`agent_main`; ``python -m <pkg>``
calls :func:`mesh_main`, which starts every agent's replicas as processes and
restarts any that die. The server URL (with an agent's credentials when ACLs are on)
travels to children in the environment, never on the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from meshc.runtime import cluster
from meshc.runtime.connect import MeshOpsError
from meshc.runtime.errors import ConfigError
from meshc.runtime.preflight import unresolved_handlers
from meshc.runtime.spec import MeshSpec
from meshc.runtime.supervisor import SupervisorEvent, WorkerCommand, supervise
from meshc.runtime.worker import run_agent

URL_ENV = "MESHC_WORKER_URL"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _logging(verbose: bool) -> None:
    """INFO by default; ``-v`` for DEBUG; ``MESHC_LOG_LEVEL`` (e.g. WARNING) overrides."""
    level = os.environ.get("MESHC_LOG_LEVEL", "DEBUG" if verbose else "INFO").upper()
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def agent_main(
    mesh: MeshSpec, agent: str, handler: Callable[..., Any] | None, argv: Sequence[str] | None
) -> int:
    """Run one replica of ``agent``; the process exit code."""
    parser = argparse.ArgumentParser(prog=f"{mesh.name}.{agent}", description=__doc__)
    parser.add_argument("--redis", help="server URL (else MESHC_WORKER_URL, REDIS_URL, embedded)")
    parser.add_argument("--consumer", help="consumer name (default: host-pid-random)")
    parser.add_argument("--partitions", help="partitions to serve, e.g. 0-7,12 (default: all)")
    parser.add_argument("--cluster", action="store_true", help="the URL is a cluster node's")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    _logging(args.verbose)
    try:
        url = args.redis or os.environ.get(URL_ENV) or _resolve(start=False)
        url = cluster.as_cluster_url(url) if args.cluster else url
        parts = cluster.parse_partitions(args.partitions) if args.partitions else None
    except (MeshOpsError, ConfigError) as err:
        print(f"{mesh.name}.{agent}: {err}", file=sys.stderr)
        return 2
    return run_agent(mesh, agent, handler, redis_url=url, consumer=args.consumer, partitions=parts)


def _resolve(start: bool, explicit: str | None = None, durability: str | None = None) -> str:
    from meshc.runtime.server import resolve_url

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
    commands = []
    for name in sorted(mesh.agents):
        spec = mesh.agents[name]
        if not spec.reads:
            continue
        env = {**(extra_env or {}), URL_ENV: url_for(name)}
        for replica in range(spec.policy.replicas):
            commands.append(
                WorkerCommand(
                    name=f"{name}#{replica}" if spec.policy.replicas > 1 else name,
                    argv=[sys.executable, "-m", f"{package}.agents.{name}", *served],
                    env=env,
                )
            )
    return commands


def mesh_main(mesh: MeshSpec, package: str, argv: Sequence[str] | None) -> int:
    """Start and supervise every agent of the mesh until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=__doc__)
    parser.add_argument("--redis", help="server URL (else REDIS_URL, else the embedded server)")
    parser.add_argument("--durability", choices=("default", "strict"), default=None)
    parser.add_argument("--cluster", action="store_true", help="the URL is a cluster node's")
    args = parser.parse_args(argv)
    _logging(False)
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
    return run_mesh(mesh, package, url)


def run_mesh(
    mesh: MeshSpec,
    package: str,
    url: str,
    *,
    url_for: Callable[[str], str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    on_event: Callable[[SupervisorEvent], None] | None = None,
    stop: threading.Event | None = None,
    partitions: Sequence[int] | None = None,
) -> int:
    """Supervise one process per replica until a signal (or ``stop``, from another thread).

    ``url_for`` gives each agent its own URL (with its credentials when ACLs are on);
    ``extra_env`` is added to every worker's environment (PYTHONPATH, for instance);
    ``partitions`` narrows every worker to those partitions. A single-partition mesh is
    refused on a cluster here, before any worker starts (:class:`cluster.PartitionsError`).
    """
    if cluster.is_cluster_url(url):
        cluster.require_partitions(mesh, url)
    commands = worker_commands(
        mesh, package, url_for or (lambda _agent: url), extra_env, partitions
    )
    log = logging.getLogger("meshc.run")
    log.info("mesh %s v%d: %d worker processes", mesh.name, mesh.version, len(commands))
    return supervise(commands, on_event=on_event, stop=stop)
