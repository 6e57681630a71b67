"""Agents run the project's scripts by SHA, and nothing else.

The attack: an agent's user sends a script of its own. ``EVAL "while true do end" 0``
would hold the server for every client until someone runs SCRIPT KILL, so the agent
users have ``+evalsha`` only (no ``+eval``, ``+script|load``, ``+function``), and the
operator loads the scripts. Then the defence's cost: a server that lost its scripts
(``SCRIPT FLUSH`` here; a restart does the same) stops every commit, the workers wait
(they may not load the scripts: the server logs each refusal), and they carry on,
with exactly one summary per task, once the operator has loaded them again, which
``meshc run --acl`` does by itself (:class:`meshc.ops.acl_watch.AclWatch`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cli_kit import wait_for
from meshc.codegen.build import Built, build_cached
from meshc.ops.acl import AgentUrls, admin_client, admin_url, enable, worker_scripts
from meshc.ops.acl_watch import AclWatch
from meshc.ops.client import MeshClient
from meshc.runtime.process.launch import run_mesh

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = "doc.review.summary"
# What an agent must not send: its own scripts and functions.
OWN_CODE: list[list[str]] = [
    ["EVAL", "while true do end", "0"],
    ["EVAL_RO", "return 1", "0"],
    ["SCRIPT", "LOAD", "while true do end"],
    ["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() end)"],
    ["FCALL", "x", "0"],
    ["SCRIPT", "KILL"],
]


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp("review-build")
    built = build_cached(str(ROOT / "meshes" / "doc_review.yaml"), folder)
    sys.path.insert(0, str(built.root))
    yield built
    sys.path.remove(str(built.root))


@pytest.fixture
def users(own_server: str, review: Built, tmp_path: Path) -> AgentUrls:
    return enable(own_server, review.package, tmp_path / "secrets.json")


def test_an_agent_cannot_send_a_script_of_its_own(users: AgentUrls) -> None:
    grammar = redis.Redis.from_url(users.for_agent("grammar"))
    try:
        for command in OWN_CODE:
            with pytest.raises(redis.exceptions.NoPermissionError):
                grammar.execute_command(*command)
        commit = worker_scripts()[0]
        # The project's scripts, by SHA, are what it may run (NOSCRIPT would say "not
        # loaded"; an arity error says it got past the ACL and into the script).
        with pytest.raises(redis.ResponseError) as ran:
            grammar.evalsha(commit.sha, 0)
        assert not isinstance(ran.value, redis.exceptions.NoPermissionError), ran.value
        assert grammar.ping()  # nothing froze the server
    finally:
        grammar.close()


def test_enabling_loads_every_script_the_workers_call(
    users: AgentUrls, own_server: str, tmp_path: Path
) -> None:
    admin = admin_client(own_server, tmp_path / "secrets.json")
    try:
        from meshc.runtime import scripts
        from meshc.runtime.llm import store

        shas = [s.sha for s in worker_scripts()]  # (with any a test made: registered too)
        core = [scripts.commit, scripts.keepalive, scripts.join_store, scripts.join_emit,
                scripts.join_fail, scripts.join_due, store.bucket, store.add_counters]  # fmt: skip
        assert {s.sha for s in core} <= set(shas)
        assert admin.script_exists(*shas) == [True] * len(shas)
    finally:
        admin.close()


def test_workers_wait_for_lost_scripts_and_carry_on_once_loaded(
    users: AgentUrls,
    own_server: str,
    review: Built,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # the review handlers (meshes.review.*) import from here
    spec = review.load_spec()
    admin = admin_client(own_server, tmp_path / "secrets.json")
    admin.acl_log_reset()
    stop = threading.Event()
    runner = threading.Thread(
        target=run_mesh,
        args=(spec, review.package, admin_url(own_server, tmp_path / "secrets.json")),
        kwargs={
            "url_for": users.for_agent,
            "operator_url": users.operator_url,
            "extra_env": {"PYTHONPATH": f"{review.root}:{ROOT}"},
            "stop": stop,
        },
        daemon=True,
    )
    runner.start()
    try:
        with MeshClient(spec, users.operator_url) as client:
            first = [s.trace for s in client.submit_many(_tasks(0, 5))]
            assert len(client.wait_many(first, timeout=60)) == 5
            admin.script_flush()
            later = [s.trace for s in client.submit_many(_tasks(5, 5))]
            wait_for(lambda: _load_refusals(admin) != [], 60, "a worker's SCRIPT LOAD, refused")
            assert admin.xlen(SUMMARY) == 5  # nothing commits without its script
            watch = AclWatch(own_server, review.package, tmp_path / "secrets.json",
                             users.operator_url)  # fmt: skip
            watch.check()  # what `meshc run --acl` does every few seconds
            assert (watch.reloaded, watch.reapplied) == (1, 0)
            assert len(client.wait_many(later, timeout=60)) == 5
        summaries = [e[1][b"data"] for e in admin.xrange(SUMMARY)]
        assert len(summaries) == 10 and len(set(summaries)) == 10
        log = admin.acl_log()
        assert log and {_text(e["object"]) for e in log} == {"script|load"}, log
        assert {_text(e["username"]) for e in log} <= {f"doc_review.{a}" for a in spec.agents}
    finally:
        stop.set()
        runner.join(timeout=90)
        admin.close()
    assert not runner.is_alive()


def _tasks(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"doc_id": f"d{i}", "chunk_id": 0, "text": "Their is a  problem. We recieve it!!"}
        for i in range(first, first + count)
    ]


def _load_refusals(admin: redis.Redis) -> list[Any]:
    return [e for e in admin.acl_log() if _text(e["object"]) == "script|load"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
