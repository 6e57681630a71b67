"""The retention loop: ``meshc run`` trims every stream with a retention, in the
background, for as long as the mesh runs.

How often. The pause between two passes lies between :data:`SHORTEST` (0.5 s) and a
longest pause taken from the policy: 5 s, or a quarter of the smallest ``max_age``
when that is shorter (never below 0.5 s), so an entry outlives its ``max_age`` by at
most about a quarter of it. Within those bounds the loop adapts to the traffic: a pass
that removed entries halves the pause, a pass that removed nothing doubles it. Under
load the loop trims every 0.5 s, so a stream overshoots its ``maxlen`` by about half
a second of traffic (plus what its readers have not finished, which is never
trimmed); an idle mesh costs one pass per longest pause.

A pass that fails (the server restarting, a lost connection) is logged and retried
after the longest pause; the loop never stops the mesh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from meshc.runtime.connect import MeshOpsError, connect
from meshc.runtime.retention import StreamTrim, retained, trim_report
from meshc.runtime.spec import MeshSpec

SHORTEST = 0.5
LONGEST = 5.0
log = logging.getLogger("meshc.retention")


def pauses(mesh: MeshSpec) -> tuple[float, float]:
    """The shortest and the longest pause between passes for this mesh's policy."""
    ages = [s.max_age / 4 for s in retained(mesh) if s.max_age is not None]
    longest = max(SHORTEST, min([LONGEST, *ages]))
    return SHORTEST, longest


class RetentionLoop:
    """Trims ``mesh`` on a thread of its own until :meth:`stop`.

    ``on_pass`` is called after each pass with its report (tests watch the passes
    with it). Start it only when :func:`retained` is not empty: there is nothing to do
    otherwise.
    """

    def __init__(
        self,
        mesh: MeshSpec,
        url: str,
        *,
        on_pass: Callable[[list[StreamTrim]], None] | None = None,
    ) -> None:
        self.mesh, self.url, self.on_pass = mesh, url, on_pass
        self.shortest, self.longest = pauses(mesh)
        self.pause = self.shortest
        self.passes = self.removed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshc-retention", daemon=True)

    def start(self) -> RetentionLoop:
        names = ", ".join(s.name for s in retained(self.mesh))
        log.info("retention: trimming %s every %g-%g s", names, self.shortest, self.longest)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop and wait for the pass in progress to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        client: redis.Redis | None = None
        try:
            while not self._stop.is_set():
                try:
                    client = client or connect(self.url)
                    self._pass(client)
                except (redis.RedisError, MeshOpsError) as err:
                    log.warning("retention: pass failed, retrying in %g s: %s", self.longest, err)
                    _closed(client)
                    client = None
                    self.pause = self.longest
                self._stop.wait(self.pause)
        finally:
            _closed(client)

    def _pass(self, client: redis.Redis) -> None:
        report = trim_report(self.mesh, client)
        removed = sum(t.removed for t in report)
        self.passes += 1
        self.removed += removed
        if removed:
            self.pause = max(self.shortest, self.pause / 2)
            log.debug("retention: removed %d entries", removed)
        else:
            self.pause = min(self.longest, self.pause * 2)
        if self.on_pass is not None:
            self.on_pass(report)


def start_retention(mesh: MeshSpec, url: str) -> RetentionLoop | None:
    """Start the loop when some stream of ``mesh`` has a retention; None otherwise."""
    return RetentionLoop(mesh, url).start() if retained(mesh) else None


def _closed(client: redis.Redis | None) -> None:
    if client is not None:
        client.close()
