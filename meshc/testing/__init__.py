"""Testing a mesh: hypothesis strategies, a pytest plugin, and ``meshc test``.

- :mod:`meshc.testing.strategies`: ``payloads``, ``near_valid``, ``joined``, ``meshes``;
- :mod:`meshc.testing.plugin`: the ``meshc_mesh`` fixture (opt-in:
  ``pytest_plugins = ["meshc.testing.plugin"]`` or ``pytest -p meshc.testing.plugin``);
- :mod:`meshc.testing.harness`: ``RunningMesh``, a mesh's workers running in-process;
- :mod:`meshc.testing.runner`: the checks behind ``meshc test``.

Names are imported lazily: generated workers import :mod:`meshc.testing.handlers`,
which must not pull in hypothesis (a test-only dependency).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "payloads": "meshc.testing.strategies",
    "near_valid": "meshc.testing.strategies",
    "joined": "meshc.testing.strategies",
    "meshes": "meshc.testing.meshgen",
    "NearValid": "meshc.testing.strategies",
    "RunningMesh": "meshc.testing.harness",
    "TestServer": "meshc.testing.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'meshc.testing' has no attribute {name!r}")
