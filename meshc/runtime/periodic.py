"""A task run on a thread of its own every ``every`` seconds until stopped.

The loops beside a running mesh (stale consumers, the ACL watch) share this shape:
a pass that fails because the server is away is logged once, retried quietly at the
next pass, and its end is noted when a pass works again.
"""

from __future__ import annotations

import logging
import threading
from typing import Self

import redis
from meshc.runtime.connect import MeshOpsError

FAILURES = (redis.RedisError, MeshOpsError, OSError)


class Periodic:
    """Subclasses set ``every`` and implement :meth:`tick`; ``failed`` and ``recovered``
    say what to log on the first failure of an outage and on its end."""

    every: float = 1.0

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.log = log
        self.failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tick(self) -> None:
        raise NotImplementedError

    def failed(self, err: BaseException) -> str:
        return f"{self._thread.name}: pass failed (retrying quietly): {err}"

    def recovered(self) -> str | None:
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except FAILURES as err:
                if not self.failing:
                    self.log.warning("%s", self.failed(err))
                self.failing = True
                continue
            if self.failing and (note := self.recovered()) is not None:
                self.log.info("%s", note)
            self.failing = False
