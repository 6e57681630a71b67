"""Fixtures of the LLM tests: the runtime tests' real servers, and a fake model server.

The Redis side is never faked: ``valkey_server``/``valkey_url`` are the runtime tests'
own fixtures (embedded Valkey 9 and Debian's Redis 7.0), loaded from their conftest.
Only the model server is a stand-in, since a real one cannot run here.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_server import FakeLLM
from llm_kit import REVIEW_LLM
from meshc.codegen.build import Built, build_cached


def _runtime_conftest() -> object:
    path = Path(__file__).parents[1] / "runtime" / "conftest.py"
    spec = importlib.util.spec_from_file_location("meshc_tests_runtime_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_runtime = _runtime_conftest()
valkey_server = _runtime.valkey_server  # type: ignore[attr-defined]
valkey_url = _runtime.valkey_url  # type: ignore[attr-defined]


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fresh fake model server; its base URL is ``fake_llm.url``."""
    fake = FakeLLM()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def review_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """``meshes/doc_review_llm.yaml`` compiled, as ``meshc run`` would run it."""
    built = build_cached(str(REVIEW_LLM), tmp_path_factory.mktemp("llm-build"))
    built.load_spec()
    yield built
    sys.path.remove(str(built.root))
    for name in [m for m in sys.modules if m.split(".")[0] == built.package]:
        del sys.modules[name]
