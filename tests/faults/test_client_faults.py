"""The caller's side under slow meshes: waiting longer than the client's read timeout."""

from __future__ import annotations

import threading
import time

import orjson
import redis
from meshc.ops.client import MeshClient
from meshc.runtime.spec import AgentSpec, MeshSpec, StreamSpec
from pydantic import BaseModel


class Doc(BaseModel):
    doc_id: str


def _mesh() -> MeshSpec:
    streams = {"w.in": StreamSpec("w.in", Doc), "w.out": StreamSpec("w.out", Doc, terminal=True)}
    agents = {
        "ingest": AgentSpec("ingest", "producer", (), ("w.in",), ""),
        "work": AgentSpec("work", "specialist", ("w.in",), ("w.out",), "m:work"),
    }
    return MeshSpec("w", 1, streams, agents)


def test_wait_outlasts_the_clients_five_second_read_timeout(valkey_only_url: str) -> None:
    """redis-py 8 reads with a 5 s socket timeout by default; one XREAD BLOCK for the
    whole wait raised TimeoutError when the result took longer than that."""
    with MeshClient(_mesh(), valkey_only_url) as client:
        sent = client.submit({"doc_id": "slow"})

        def answer_late() -> None:
            time.sleep(6.0)
            with redis.Redis.from_url(valkey_only_url) as r:
                fields = {"data": orjson.dumps({"doc_id": "slow"}), "trace": sent.trace,
                          "parent": sent.entry_id, "agent": "work", "attempt": "1"}  # fmt: skip
                r.xadd("w.out", fields)  # type: ignore[arg-type]

        late = threading.Thread(target=answer_late)
        late.start()
        started = time.monotonic()
        result = client.wait(sent, timeout=20)
        late.join()
    assert result.data == {"doc_id": "slow"}
    assert 5.5 < time.monotonic() - started < 15
