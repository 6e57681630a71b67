"""The narrow interface a worker gives the engines it runs (the join, built-ins).

An engine never holds the Worker: it sees what it may do with the worker's lane —
validate an entry, start calls in the worker's window, run a commit script with the
worker's retries, say which entries are settled — and nothing else. So the worker's
loop can change without touching them, and they can be driven by a test double.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from meshc.runtime.context import Call
from meshc.runtime.replica import Stats
from meshc.runtime.scripts import Script
from meshc.runtime.spec import AgentSpec, MeshSpec, Policy
from meshc.runtime.telemetry import Telemetry
from meshc.runtime.wire import Delivery
from pydantic import BaseModel
from redis.asyncio import Redis


class Lane(Protocol):
    mesh: MeshSpec
    spec: AgentSpec
    policy: Policy
    partitions: tuple[int, ...]
    log: logging.Logger
    stats: Stats
    in_models: dict[str, type[BaseModel]]
    out_models: dict[str, type[BaseModel]]
    dlq_keys: dict[int, bytes]
    header: tuple[bytes, ...]  # header fields every output carries (name value ...)
    telemetry: Telemetry | None  # metrics and spans; None when both are off

    @property
    def redis(self) -> Redis: ...

    def key(self, stream: str, partition: int) -> bytes:
        """The key of ``stream`` in ``partition``."""

    def admit(self, d: Delivery) -> BaseModel | None:
        """The validated payload, or None when ``d`` was dead-lettered (or acked). A
        refused entry is finished; an admitted one must be ``finish``ed by the engine."""

    def settled(self, entries: list[tuple[bytes, bytes]]) -> None:
        """These (key, id) entries are written: free their place in the window."""

    def hold(self, n: int) -> None:
        """Count ``n`` units of work (merges) in the window: running, then ``finish``ed
        (their lane is free), then ``release``d (their script is written)."""

    def finish(self, n: int) -> None: ...

    def release(self, n: int) -> None: ...

    def start(self, calls: list[Call]) -> None:
        """Run ``calls`` under the agent's concurrency and timeout."""

    async def retrying(
        self, script: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        """Run idempotent script calls, waiting out a lost or busy server."""

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` beside the worker's loop; its failure stops the worker."""

    def fail(self, error: BaseException) -> None:
        """Stop the worker on an error it cannot go on after."""
