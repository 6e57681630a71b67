"""Reload a running mesh (``meshc run`` on SIGHUP): restart only what changed.

The new version is compared with the running one agent by agent (its spec, and the
type fingerprints of the streams it reads and writes). Then, in an order that never
drops or doubles work in flight, and never joins a task with the wrong lanes:

1. groups for the reads that are new start at the end of their stream (``$``), so a
   new reader of an existing stream takes what is written from now on (``meshc replay``
   runs it over what came before); a new lane's stream starts empty;
2. new agents start, and the run waits until they are ready;
3. changed agents that keep all their inputs restart, downstream first (an aggregator
   before the coordinator that fans out to it): each replica gets SIGTERM, finishes and
   commits what it holds, and the new build starts in its place;
4. removed agents, and changed agents that lose an input, wait until what they read
   is drained (no lag, nothing pending): the tasks fanned out before the change still
   pass through them. Then the removed ones stop and the others restart;
5. the groups of the reads that are gone are destroyed.

Joins stay right across the change because every task carries the lanes it was sent
to (``taskhead``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import networkx as nx
import redis
from meshc.runtime import keys
from meshc.runtime.process.supervisor import Pool, WorkerCommand
from meshc.runtime.spec import MeshSpec

log = logging.getLogger("meshc.reload")
DRAIN_REPORT = 10.0  # seconds between "still draining" lines


@dataclass(frozen=True)
class Plan:
    """What changes between two versions, agent by agent (agents that read something)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    restart: tuple[str, ...]  # changed, keeping every input: downstream first
    after_drain: tuple[str, ...]  # changed, losing an input: once it is drained
    new_reads: tuple[tuple[str, str], ...]  # (agent, stream) groups to create at `$`
    gone_reads: tuple[tuple[str, str], ...]  # (agent, stream) groups to destroy

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.restart or self.after_drain)


def agent_changed(old: MeshSpec, new: MeshSpec, name: str) -> bool:
    """Does ``name`` run differently: its spec, or the types of the streams it uses?"""
    a, b = old.agents[name], new.agents[name]
    if a != b:
        return True
    used = set(a.reads) | set(a.writes)
    return any(old.streams[s].fingerprint != new.streams[s].fingerprint for s in used)


def plan(old: MeshSpec, new: MeshSpec) -> Plan:
    olds = {n for n, a in old.agents.items() if a.reads}
    news = {n for n, a in new.agents.items() if a.reads}
    changed = {n for n in olds & news if agent_changed(old, new, n)}
    losing = {n for n in changed if set(old.agents[n].reads) - set(new.agents[n].reads)}
    order = downstream_first(new)
    old_pairs = {(n, s) for n in olds for s in old.agents[n].reads}
    new_pairs = {(n, s) for n in news for s in new.agents[n].reads}
    return Plan(
        added=tuple(sorted(news - olds)),
        removed=tuple(sorted(olds - news)),
        restart=tuple(n for n in order if n in changed - losing),
        after_drain=tuple(n for n in downstream_first(old) if n in losing),
        new_reads=tuple(sorted(new_pairs - old_pairs)),
        gone_reads=tuple(sorted(old_pairs - new_pairs)),
    )


def downstream_first(mesh: MeshSpec) -> list[str]:
    """Agents in reverse topological order (ties by name)."""
    graph = nx.DiGraph()
    for a in mesh.agents.values():
        graph.add_node(a.name)
        for s in a.writes:
            for reader in mesh.readers(s):
                graph.add_edge(a.name, reader)
    return list(reversed(list(nx.lexicographical_topological_sort(graph))))


def create_groups_at_end(
    client: redis.Redis, mesh: MeshSpec, pairs: Sequence[tuple[str, str]]
) -> None:
    """Groups for new reads, at the current end of their stream (BUSYGROUP: kept)."""
    for agent, stream in pairs:
        for key in keys.stream_keys(mesh, stream):
            try:
                client.xgroup_create(key, agent, id="$", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise


def backlog(client: redis.Redis, mesh: MeshSpec, agent: str, stream: str) -> int:
    """Entries of ``stream`` the group of ``agent`` has not finished (lag plus pending)."""
    total = 0
    for key in keys.stream_keys(mesh, stream):
        try:
            groups = {g["name"].decode(): g for g in client.xinfo_groups(key)}
        except redis.ResponseError:  # no such stream: nothing to drain
            continue
        g = groups.get(agent)
        if g is None:
            total += int(client.xlen(key))
            continue
        lag = g.get("lag")
        if lag is None:
            last = g["last-delivered-id"].decode()
            lag = len(client.xrange(key, "(" + last, "+", count=100_000) or [])
        total += int(lag) + int(g["pending"])
    return total


def wait_drained(client: redis.Redis, mesh: MeshSpec, pairs: Sequence[tuple[str, str]],
                 stop: threading.Event) -> bool:  # fmt: skip
    """Until every (agent, stream) group has finished its stream; False if stopped."""
    waited = 0.0
    while True:
        left = {p: backlog(client, mesh, *p) for p in pairs}
        if not any(left.values()) and _settled(client, mesh, pairs):
            return True
        if waited >= DRAIN_REPORT:
            busy = ", ".join(f"{a} on {s}: {n}" for (a, s), n in left.items() if n)
            log.info("draining before the reload goes on (%s)", busy or "settling")
            waited = 0.0
        if stop.wait(0.2):
            return False
        waited += 0.2


def _settled(client: redis.Redis, mesh: MeshSpec, pairs: Sequence[tuple[str, str]]) -> bool:
    """Still drained a moment later: a writer upstream may have been mid-commit."""
    threading.Event().wait(0.3)
    return not any(backlog(client, mesh, *p) for p in pairs)


def destroy_groups(client: redis.Redis, mesh: MeshSpec, pairs: Sequence[tuple[str, str]]) -> None:
    for agent, stream in pairs:
        for key in keys.stream_keys(mesh, stream):
            with contextlib.suppress(redis.ResponseError):  # no stream: no group either
                client.xgroup_destroy(key, agent)


Commands = Callable[[MeshSpec, Sequence[str]], list[WorkerCommand]]


def apply(pool: Pool, client: redis.Redis, old: MeshSpec, new: MeshSpec, commands: Commands,
          stop: threading.Event) -> Plan:  # fmt: skip
    """Move the running ``pool`` from ``old`` to ``new`` (see the module docstring)."""
    p = plan(old, new)
    log.info(
        "reload %s v%d -> v%d: start %s; restart %s; drain and stop %s; drain and restart %s",
        new.name, old.version, new.version, _names(p.added), _names(p.restart),
        _names(p.removed), _names(p.after_drain),
    )  # fmt: skip
    create_groups_at_end(client, new, p.new_reads)
    pool.start(commands(new, p.added), stop)
    for agent in p.restart:
        pool.retire(agent, stop)
        pool.start(commands(new, [agent]), stop)
    drains = [(a, s) for a in p.removed for s in old.agents[a].reads]
    if drains and not wait_drained(client, old, drains, stop):
        return p
    for agent in p.removed:
        pool.retire(agent, stop)
    lost = [(a, s) for a in p.after_drain for s in old.agents[a].reads if (a, s) in p.gone_reads]
    if lost and not wait_drained(client, old, lost, stop):
        return p
    for agent in p.after_drain:
        pool.retire(agent, stop)
        pool.start(commands(new, [agent]), stop)
    destroy_groups(client, old, p.gone_reads)
    log.info("reload of %s to v%d done", new.name, new.version)
    return p


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) or "none"
