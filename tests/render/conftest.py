"""Fixtures of the render tests: golden files, Graphviz, a browser, a real server.

Helpers shared with the test modules live in ``render_support``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from render_support import Browser, check_golden, find_browser


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with ``golden/<name>``, or refresh it on request."""
    return check_golden


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Debian's chromium and the pinned mermaid package; in CI their absence fails."""
    return find_browser()


@pytest.fixture(scope="session")
def graphviz_bin() -> str:
    from meshc.render import graphviz_command

    return graphviz_command()


@pytest.fixture
def valkey_url(valkey_only_url: str) -> str:
    """The shared embedded Valkey (``tests/conftest.py``), with an empty database."""
    return valkey_only_url


@pytest.fixture
def valkey(valkey_url: str) -> Iterator[redis.Redis]:
    """A client on the session's server, with an empty database."""
    client = redis.Redis.from_url(valkey_url)
    client.flushall()
    yield client
    client.close()
