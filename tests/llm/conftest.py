"""Fixtures of the LLM tests: the runtime tests' real servers, and a fake model server.

The Redis side is never faked: ``valkey_server``/``valkey_url`` come from
``tests/conftest.py`` (embedded Valkey 9 and Debian's Redis 7.0).
Only the model server is a stand-in, since a real one cannot run here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from fake_server import FakeLLM
from llm_kit import REVIEW_LLM
from meshc.codegen.build import Built, build_cached


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
