"""The gateway as an ASGI app: its connections, its readers, and its routes.

:func:`create_app` builds a Starlette app for one mesh. At start-up it connects
twice to the mesh's server: a synchronous client for :class:`MeshClient` (submission
goes through the very code ``meshc submit`` runs: validation, backpressure,
partitioning, wire format), called on a worker thread, and an asyncio client for
everything that waits. Then it starts the two readers of the terminal streams: the
:class:`ResultHub` that wakes long-polls, and the :class:`ResultLog` group reader
that records results and delivers webhooks. Routes are in :mod:`meshc.gateway.routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import redis
import redis.asyncio
from meshc.gateway import openapi
from meshc.gateway.config import GatewayConfig
from meshc.gateway.delivery import ResultLog
from meshc.gateway.http import BearerAuth
from meshc.gateway.results import ResultHub
from meshc.ops.client import MeshClient
from meshc.runtime.connect import check_async, connect, connect_async
from starlette.applications import Starlette
from starlette.middleware import Middleware


@dataclass
class Counter:
    """Requests of one kind held open, against their bound."""

    bound: int
    now: int = 0

    def take(self) -> bool:
        if self.now >= self.bound:
            return False
        self.now += 1
        return True

    def give(self) -> None:
        self.now -= 1


@dataclass
class Gateway:
    """What the routes share; the clients and readers exist while the app runs."""

    config: GatewayConfig
    consumer: str
    document: bytes = b""
    client: MeshClient | None = None
    redis: redis.asyncio.Redis | None = None
    hub: ResultHub | None = None
    waits: Counter = field(default_factory=lambda: Counter(0))
    streams: Counter = field(default_factory=lambda: Counter(0))

    def __post_init__(self) -> None:
        limits = self.config.limits
        self.waits, self.streams = Counter(limits.max_waits), Counter(limits.max_streams)
        self.document = openapi.dumps(self.config.mesh, auth=self.config.tokens is not None)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Connect, start the readers, and stop everything on the way out."""
        url = self.config.url
        self.redis = connect_async(url)
        await check_async(self.redis, url)
        self.client = MeshClient(self.config.mesh, client=connect(url))
        self.hub = ResultHub(self.redis, self.config.mesh)
        hooks = self.config.webhooks
        http = httpx.AsyncClient(timeout=hooks.timeout) if hooks else None
        results = ResultLog(self.redis, self.config.mesh, self.consumer, hooks, http)
        await results.setup()
        tasks = [asyncio.create_task(self.hub.run()), asyncio.create_task(results.run())]
        try:
            await _started(self.hub, tasks)
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if http is not None:
                await http.aclose()
            self.client.close()
            await self.redis.aclose()


async def _started(hub: ResultHub, tasks: list[asyncio.Task[None]]) -> None:
    """Wait until the hub reads (a reader that failed at once raises its error here)."""
    ready = asyncio.create_task(hub.ready.wait())
    done, _ = await asyncio.wait([ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        for task in done:
            task.result()


def create_app(config: GatewayConfig, consumer: str) -> Starlette:
    """The ASGI app of one mesh; ``consumer`` names this gateway in the results group
    (keep it the same across restarts: its pending deliveries are then its own)."""
    from meshc.gateway import routes

    gateway = Gateway(config, consumer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.running():
            yield

    app = Starlette(
        routes=routes.table(gateway),
        middleware=[Middleware(BearerAuth, tokens=config.tokens)],
        exception_handlers=routes.handlers(),
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
