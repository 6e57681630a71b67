"""Shared helpers for the operational tests: one real embedded server and a small mesh.

One server serves every ``test_ops_*`` module (it starts in well under a second, but
starting it once keeps the suite fast); each test gets a flushed database. The mesh
is built by hand from runtime records, as generated ``topology.py`` modules do.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import redis
from meshc.runtime.process.server import ensure_server, stop_server
from meshc.runtime.spec import AgentSpec, JoinSpec, MeshSpec, StreamSpec
from pydantic import BaseModel


class Task(BaseModel):
    doc_id: str
    text: str


class Partial(BaseModel):
    doc_id: str
    n: int


class Summary(BaseModel):
    doc_id: str
    total: int


@functools.cache
def shared_url() -> str:
    """Start one embedded server in a temporary folder; stopped and removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="meshc-ops-"))
    info = ensure_server(folder)

    def cleanup() -> None:
        stop_server(folder)
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(cleanup)
    return info.url


def fresh_client() -> redis.Redis:
    """A client on the shared server with an empty database."""
    client = redis.Redis.from_url(shared_url())
    client.flushall()
    return client


def make_mesh(
    *,
    partitions: int = 1,
    partition_key: str | None = None,
    max_backlog: int | None = None,
    maxlen: int | None = None,
    max_age: float | None = None,
) -> MeshSpec:
    """``ingest → t.tasks → work → t.parts → agg → t.out`` (terminal)."""
    streams = {
        "t.tasks": StreamSpec("t.tasks", Task, maxlen=maxlen, max_age=max_age,
                              max_backlog=max_backlog),
        "t.parts": StreamSpec("t.parts", Partial),
        "t.out": StreamSpec("t.out", Summary, terminal=True),
    }  # fmt: skip
    agents = {
        "ingest": AgentSpec("ingest", "producer", (), ("t.tasks",), ""),
        "work": AgentSpec("work", "specialist", ("t.tasks",), ("t.parts",), "m:work"),
        "agg": AgentSpec(
            "agg", "aggregator", ("t.parts",), ("t.out",), "m:agg",
            join=JoinSpec(on=("doc_id",), timeout=5.0, lanes={"t.parts": "parts"}),
        ),
    }  # fmt: skip
    return MeshSpec("t", 1, streams, agents, partitions=partitions, partition_key=partition_key)
