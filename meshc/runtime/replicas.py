"""Waiting for replicas after each write: ``MESHC_WAIT_REPLICAS`` (docs/cluster.md).

Replication in Redis and Valkey is asynchronous: a primary acknowledges a write before
any replica has it, and a failover loses what it had not sent. ``WAIT N timeout`` blocks
until N replicas have every earlier write *of its own connection*, so it must travel on
the connection that wrote: here, in the same pipeline as the writes, one WAIT per node
written to (redis-py keeps a node's part of a pipeline on one connection). Used by the
worker after every commit script and by ``MeshClient`` after every submit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshc.runtime.cluster import ClusterConfigError, is_cluster
from meshc.runtime.scripts import Arg, Script
from redis.exceptions import NoScriptError

WAIT_ENV = "MESHC_WAIT_REPLICAS"
WAIT_TIMEOUT_ENV = "MESHC_WAIT_TIMEOUT_MS"
WAIT_TIMEOUT_MS = 1000

log = logging.getLogger("meshc.replicas")


@dataclass
class ReplicaWait:
    """WAIT for ``replicas`` replicas after each write (0: never), on the connection that
    wrote, since WAIT counts the writes of its own connection.

    This narrows, not closes, the window that asynchronous replication leaves: a write
    is visible on the primary before WAIT returns, and a WAIT that times out does not
    undo it. ``short`` counts the WAITs that returned fewer acknowledgements.
    """

    replicas: int = 0
    timeout_ms: int = WAIT_TIMEOUT_MS
    short: int = 0
    _warned_at: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReplicaWait:
        env = os.environ if environ is None else environ
        return cls(_int_env(env, WAIT_ENV, 0), _int_env(env, WAIT_TIMEOUT_ENV, WAIT_TIMEOUT_MS))

    def __bool__(self) -> bool:
        return self.replicas > 0

    async def many(
        self, script: Script, client: Any, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]
    ) -> list[Any]:
        """Run script calls (as :meth:`Script.many`) and WAIT on every node written to."""
        if is_cluster(client):
            await client.initialize()  # the slot map routes the WAITs (no-op once known)
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        self.queue(pipe, client, [keys[0] for keys, _ in calls if keys])
        replies = await pipe.execute(raise_on_error=False)
        results, acks = list(replies[: len(calls)]), replies[len(calls) :]
        for n, reply in enumerate(results):
            if isinstance(reply, NoScriptError):
                await script.load(client)  # or ScriptsNotLoaded: waited out by the caller
                results[n] = await self._again(script, client, calls[n])
            elif isinstance(reply, Exception):
                raise reply
        self.check(acks)
        return results

    async def _again(
        self, script: Script, client: Any, call: tuple[Sequence[Arg], Sequence[Arg]]
    ) -> Any:
        """One call, by SHA, once its script is loaded again; WAITed on like the rest."""
        keys, args = call
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        self.queue(pipe, client, keys[:1])
        reply, *acks = await pipe.execute()
        self.check(acks)
        return reply

    def queue(self, pipe: Any, client: Any, first_keys: Iterable[Any]) -> int:
        """Add the WAITs to ``pipe``: one per node written to (one on a single server)."""
        if not is_cluster(client):
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            return 1
        nodes = {client.get_node_from_key(k).name: client.get_node_from_key(k) for k in first_keys}
        for name in sorted(nodes):
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms, target_nodes=nodes[name])
        return len(nodes)

    def check(self, acks: Sequence[Any]) -> bool:
        """True when every WAIT saw enough replicas; otherwise count it and warn (at most
        every 10 s: a missing replica would otherwise flood the log)."""
        low = [a for a in acks if isinstance(a, Exception) or int(a) < self.replicas]
        if not low:
            return True
        self.short += 1
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning(
                "WAIT %d: only %s replicas acknowledged within %d ms; these writes may be "
                "lost if their primary fails now (%d short WAITs so far)",
                self.replicas,
                ", ".join(str(a) for a in low),
                self.timeout_ms,
                self.short,
            )
        return False


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ClusterConfigError(f"{name}={raw!r}: expected a whole number >= 0")
    return int(raw)
