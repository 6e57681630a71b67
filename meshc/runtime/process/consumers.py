"""Stale consumers: remove the names of workers that are gone, never their work.

A consumer group remembers every consumer name that ever read from it. Names are
stable per host, agent and replica, so a restarted worker reuses its name, but a
renamed host or a mesh scaled down from 4 replicas to 2 leaves names behind for good,
and ``meshc status`` would list them forever. ``meshc run`` removes, with the
operator's rights (agents have no ``XGROUP DELCONSUMER``), every consumer that

- has **nothing pending**: removing a consumer drops the entries it holds from the
  group's pending list, so a consumer that holds anything is never removed (its
  entries are recovered by their owner's successor or claimed by another replica), and
- has been **idle** longer than ``max(10 × visibility_timeout, 5 minutes)``: a live
  worker reads every fraction of a second, so its idle time stays far below that.

The check and the removal run in one script, so no entry can be delivered to the
consumer between them. The retry consumer (``meshc:retry``) is never removed. A
removed name that comes back (a worker that was only paused) is simply created again
by its next read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from meshc.runtime import keys
from meshc.runtime.connect import using
from meshc.runtime.periodic import Periodic
from meshc.runtime.scripts import RETRY_CONSUMER
from meshc.runtime.spec import MeshSpec

FLOOR_S = 300.0  # the shortest idle time after which a consumer is removed
TIMES_VISIBILITY = 10
log = logging.getLogger("meshc.consumers")

# KEYS[1] stream; ARGV[1] group, ARGV[2] minimum idle ms, ARGV[3] a name never removed.
# Returns the names removed. XINFO CONSUMERS rows are flat (name, value, ...) lists.
REAP = """
local removed = {}
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #row, 2 do f[row[i]] = row[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) and f['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed[#removed + 1] = f['name']
  end
end
return removed
"""


def idle_bound(visibility_timeout: float, floor: float = FLOOR_S) -> float:
    """Seconds of idleness after which a consumer with nothing pending is removed."""
    return max(TIMES_VISIBILITY * visibility_timeout, floor)


@dataclass(frozen=True)
class Removed:
    """A consumer removed from the group of ``agent`` on stream key ``key``."""

    key: str
    agent: str
    consumer: str


def _groups(mesh: MeshSpec, floor: float) -> Iterator[tuple[str, str, int]]:
    """(stream key, group, idle bound in ms) of every group the mesh's workers read."""
    for name in sorted(mesh.agents):
        spec = mesh.agents[name]
        bound_ms = int(idle_bound(spec.policy.visibility_timeout, floor) * 1000)
        for stream in spec.reads:
            for key in keys.stream_keys(mesh, stream):
                yield key, name, bound_ms


def reap(mesh: MeshSpec, url: str | redis.Redis, *, floor: float = FLOOR_S) -> list[Removed]:
    """Remove every stale consumer of the mesh's groups once; what was removed."""
    removed: list[Removed] = []
    with using(url) as r:
        script = r.register_script(REAP)
        for key, group, bound_ms in _groups(mesh, floor):
            try:
                names = script(keys=[key], args=[group, bound_ms, RETRY_CONSUMER])
            except redis.ResponseError as err:
                if "NOGROUP" in str(err) or "no such key" in str(err).lower():
                    continue  # not created yet: no worker read it
                raise
            removed.extend(Removed(key, group, _text(n)) for n in names)
    return removed


def _text(name: bytes | str) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


class ConsumerReaper(Periodic):
    """Runs :func:`reap` on a thread of its own every ``every`` seconds until
    :meth:`stop`; a pass that fails (the server away) is retried at the next one."""

    def __init__(self, mesh: MeshSpec, url: str, *, floor: float = FLOOR_S) -> None:
        super().__init__("meshc-consumers", log)
        self.mesh, self.url, self.floor = mesh, url, floor
        shortest = min(idle_bound(s.policy.visibility_timeout, floor) for s in mesh.agents.values())
        self.every = max(0.2, min(60.0, shortest / 4))  # a name outlives its bound by <25%
        self.passes = 0
        self.removed: list[Removed] = []

    def tick(self) -> None:
        removed = reap(self.mesh, self.url, floor=self.floor)
        self.passes += 1
        self.removed.extend(removed)
        for r in removed:
            log.info("removed consumer %s of %s on %s: idle, nothing pending",
                     r.consumer, r.agent, r.key)  # fmt: skip

    def failed(self, err: BaseException) -> str:
        return f"removing stale consumers failed (retrying quietly): {err}"


def start_reaper(mesh: MeshSpec, url: str, *, floor: float | None = None) -> ConsumerReaper | None:
    """Start the reaper when some agent of ``mesh`` reads a stream; None otherwise.
    ``floor`` (default :data:`FLOOR_S`, read at each call) is the shortest idle bound."""
    if not any(spec.reads for spec in mesh.agents.values()):
        return None
    return ConsumerReaper(mesh, url, floor=FLOOR_S if floor is None else floor).start()
