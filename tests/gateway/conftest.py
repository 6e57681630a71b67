"""The gateway against real things: the embedded Valkey, the review mesh's worker
processes, uvicorn on a free port, httpx as the caller.

The review mesh runs once per test module (its workers take seconds to start); each
test starts its own gateway (a fraction of a second), so gateways with different
settings never share the results group at the same time.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pytest
import redis

pytest.importorskip("starlette", reason="meshc[serve] is not installed")

from gateway_kit import IDLE_MESH, Start, tokens  # noqa: E402
from meshc.codegen.build import Built, build_cached  # noqa: E402
from meshc.demo import running_workers  # noqa: E402
from meshc.gateway import runner  # noqa: E402
from meshc.gateway.config import GatewayConfig, Limits, Webhooks  # noqa: E402
from meshc.runtime.spec import MeshSpec  # noqa: E402


@pytest.fixture(scope="module")
def review(
    valkey_only_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MeshSpec, str]]:
    """The review mesh's workers on a flushed server, for the whole module."""
    with redis.Redis.from_url(valkey_only_server) as r:
        r.flushall()
    folder = tmp_path_factory.mktemp("review")
    with as_file(files("meshc.examples").joinpath("doc_review.yaml")) as path:
        built: Built = build_cached(str(path), folder)
    spec = built.load_spec()
    with running_workers(spec, built, valkey_only_server):
        yield spec, valkey_only_server


@pytest.fixture
def idle(valkey_only_server: str, tmp_path: Path) -> tuple[MeshSpec, str]:
    """A small mesh that no worker runs, in a database of its own (flushed): the review
    mesh's workers may be running in database 0 of the same server."""
    url = valkey_only_server.rsplit("/", 1)[0] + "/1"
    with redis.Redis.from_url(url) as r:
        r.flushdb()
    (tmp_path / "idle_handlers.py").write_text("def echo(p, ctx):\n    return p\n")
    (tmp_path / "idle.yaml").write_text(IDLE_MESH)
    spec = build_cached(str(tmp_path / "idle.yaml"), tmp_path).load_spec()
    return spec, url


@pytest.fixture
def start_gateway() -> Iterator[Start]:
    """``start(spec, url, limits=…, webhooks=…, auth=True, consumer=…)`` runs a gateway
    until the test ends (or until the ``stop`` it returns is called); returns its URL."""
    stops: list[Any] = []

    def start(
        spec: MeshSpec,
        url: str,
        *,
        limits: Limits | None = None,
        webhooks: Webhooks | None = None,
        auth: bool = True,
        consumer: str = "test-gateway",
    ) -> str:
        config = GatewayConfig(spec, url, tokens() if auth else None, limits or Limits(), webhooks)
        context = runner.running(config, consumer=consumer)
        where = context.__enter__()
        stops.append(context)
        return where.url

    yield start
    for context in reversed(stops):
        context.__exit__(None, None, None)
