"""Servers for the fault tests: the shared real servers of ``tests/conftest.py``."""

from __future__ import annotations

import pytest


@pytest.fixture
def server_url(valkey_url: str) -> str:
    """An empty database on each of the two servers in turn."""
    return valkey_url
