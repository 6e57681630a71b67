"""The pytest plugin of meshc, opt-in: ``pytest_plugins = ["meshc.testing.plugin"]`` in a
project's top ``conftest.py``, or ``pytest -p meshc.testing.plugin``.

Two fixtures:

- ``meshc_server`` (session): the URL of a throw-away Valkey in its own temporary
  folder, started once per session and killed at its end;
- ``meshc_mesh`` (function): a factory. ``meshc_mesh("meshes/doc_review.yaml")``
  compiles the mesh, empties the server, starts every agent's workers in-process and
  returns a :class:`~meshc.testing.harness.RunningMesh` (``submit``, ``wait``,
  ``settle``, ``trace``, ``entries``, ``results``, ``dead_letters``, ``stats``);
  everything it started is stopped when the test ends.

Nothing here imports hypothesis or starts anything until a test asks for a fixture,
so installing meshc costs other projects' test runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from meshc.testing.harness import RunningMesh


class MeshFactory(Protocol):
    """The type of the ``meshc_mesh`` fixture."""

    def __call__(
        self,
        path: str | Path,
        *,
        handlers: Mapping[str, Callable[..., Any]] | None = None,
        replicas: int | None = None,
        visibility_timeout: float | None = None,
        max_deliveries: int | None = None,
    ) -> RunningMesh: ...


@pytest.fixture(scope="session")
def meshc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Valkey of this test session, in its own temporary folder."""
    from meshc.testing.server import TestServer

    with TestServer(tmp_path_factory.mktemp("meshc-valkey")) as url:
        yield url


@pytest.fixture
def meshc_mesh(
    meshc_server: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MeshFactory]:
    """Start a mesh file's workers on an emptied ``meshc_server``; stop them after the test.

    ``handlers`` replaces agents' handlers (stubs for ``llm`` agents, fakes, probes);
    ``replicas``, ``visibility_timeout`` and ``max_deliveries`` override every agent's
    policy (a short visibility timeout makes retries quick).
    """
    import redis
    from meshc.testing.harness import RunningMesh, tuned
    from meshc.testing.loading import load

    client = redis.Redis.from_url(meshc_server)
    client.flushall()
    client.close()
    build = tmp_path_factory.getbasetemp() / "meshc-build"
    started: list[RunningMesh] = []

    def start(
        path: str | Path,
        *,
        handlers: Mapping[str, Callable[..., Any]] | None = None,
        replicas: int | None = None,
        visibility_timeout: float | None = None,
        max_deliveries: int | None = None,
    ) -> RunningMesh:
        loaded = load(str(_locate(Path(path), request.config.rootpath)), build)
        given = dict(handlers or {})
        unusable = {a: p for a, p in loaded.problems.items() if a not in given}
        if unusable:
            raise pytest.UsageError(
                "meshc_mesh: " + "; ".join(f"agent `{a}` {p}" for a, p in unusable.items())
            )
        spec = tuned(
            loaded.spec,
            replicas=replicas,
            visibility_timeout=visibility_timeout,
            max_deliveries=max_deliveries,
        )
        mesh = RunningMesh(spec, meshc_server, {**loaded.handlers, **given})
        started.append(mesh)
        return mesh.start()

    try:
        yield start
    finally:
        for mesh in started:
            mesh.stop()


def _locate(path: Path, root: Path) -> Path:
    """A relative path from the working folder, else from the pytest root folder."""
    if path.is_absolute() or path.exists():
        return path
    return root / path
