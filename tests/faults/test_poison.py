"""Poison messages end to end: a compiled mesh run as worker processes under meshc's
supervisor, dead letters inspected and re-driven through ``meshc dlq`` (the CLI).

The mesh (``poison/poison.yaml``) has one lane; its handler raises on jobs named
``raise-…`` and SIGKILLs its own process on ``crash-…`` until the "fix" is deployed
(a flag file it reads). The worker-level rules are unit-tested in tests/runtime; these
tests check what an operator sees: the lane keeps flowing past a poison message, the
dead letter says why, and a re-drive after the fix delivers it once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from meshc.cli import main as meshc
from meshc.codegen.build import build_cached
from meshc.ops.client import MeshClient
from meshc.runtime.process.launch import worker_commands
from meshc.runtime.process.supervisor import Backoff, SupervisorEvent, supervise
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import id_order

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JOBS, DONE, DLQ = "poison.jobs", "poison.done", "poison.dlq.work"


@dataclass
class Poison:
    """One compiled poison mesh on a flushed server, run on demand."""

    url: str
    file: Path
    spec: MeshSpec
    package: str
    env: dict[str, str]
    fixed: Path
    r: redis.Redis

    @contextlib.contextmanager
    def running(self) -> Iterator[list[SupervisorEvent]]:
        """The mesh's workers under the supervisor (fast backoff) for the block."""
        events: list[SupervisorEvent] = []
        stop = threading.Event()
        commands = worker_commands(self.spec, self.package, lambda _a: self.url, self.env)
        thread = threading.Thread(
            target=supervise,
            args=(commands,),
            kwargs={"on_event": events.append, "stop": stop, "backoff": Backoff(0.1, 0.4)},
            daemon=True,
        )
        thread.start()
        try:
            yield events
        finally:
            stop.set()
            thread.join(timeout=60)

    def submit(self, jobs: list[dict[str, Any]]) -> None:
        with MeshClient(self.spec, self.url) as client:
            client.submit_many(jobs)

    def done(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Results by job id: (entry id, payload) for each, so duplicates show."""
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for eid, fields in self.r.xrange(DONE):
            data = orjson.loads(fields[b"data"])
            out.setdefault(data["id"], []).append((eid.decode(), data))
        return out

    def until(self, check: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {timeout} s: {check.__doc__ or check}")
            time.sleep(0.05)

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = meshc(["dlq", *args[:1], str(self.file), "work", "--redis", self.url, *args[1:]])
        out = capsys.readouterr()
        return code, out.out + out.err

    def letters(self, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
        code, out = self.cli(capsys, "list", "--format", "json")
        assert code == 0, out
        letters: list[dict[str, Any]] = json.loads(out)["dead_letters"]
        return letters


@pytest.fixture
def poison(server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Poison]:
    monkeypatch.chdir(tmp_path)  # the build cache of `meshc dlq` lives in .meshc/ here
    mesh_file = tmp_path / "poison.yaml"
    shutil.copy(HERE / "poison" / "poison.yaml", mesh_file)
    built = build_cached(str(mesh_file), tmp_path)
    fixed = tmp_path / "fixed"
    path = ":".join([str(built.root), str(ROOT), str(HERE / "poison")])
    env = {"PYTHONPATH": path, "POISON_FIXED": str(fixed)}
    r = redis.Redis.from_url(server_url)
    yield Poison(server_url, mesh_file, built.load_spec(), built.package, env, fixed, r)
    r.close()


def test_raising_message_is_dead_lettered_while_the_lane_flows_then_redriven(
    poison: Poison, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [{"id": f"good-{i}", "n": i} for i in range(50)]
    with poison.running():
        poison.submit([{"id": "raise-1", "n": 7}, *good])
        poison.until(lambda: len(poison.done()) == 50)
        poison.until(lambda: poison.r.xlen(DLQ) == 1)
        [letter] = poison.letters(capsys)
        assert letter["data"] == {"id": "raise-1", "n": 7}
        assert letter["deliveries"] == 3  # max_deliveries of the mesh
        assert letter["error"] == "ValueError: cannot handle job raise-1"
        assert letter["source_stream"] == JOBS
        # The lane flowed: every good job was done before the poison was given up on
        # (stream ids are server time), although it was submitted first.
        done_ids = [ids[0][0] for ids in poison.done().values()]
        assert max(map(id_order, done_ids)) < id_order(letter["id"])
        assert poison.r.xpending(JOBS, "work")["pending"] == 0

        code, out = poison.cli(capsys, "list")
        assert code == 0 and "raise-1" in out and "ValueError: cannot handle job" in out
        poison.fixed.touch()  # deploy the fix
        code, out = poison.cli(capsys, "redrive")
        assert (code, out.strip()) == (0, "re-drove 1 dead letter of work to their source streams")
        poison.until(lambda: "raise-1" in poison.done())
    results = poison.done()
    assert {k: len(v) for k, v in results.items()} == {f"good-{i}": 1 for i in range(50)} | {
        "raise-1": 1
    }
    assert results["raise-1"][0][1] == {"id": "raise-1", "n": 14}
    assert poison.r.xlen(DLQ) == 0
    code, out = poison.cli(capsys, "list")
    assert (code, out.strip()) == (0, "agent work: no dead letters")


def test_invalid_payloads_go_to_the_dead_letters_at_once_with_the_reason(
    poison: Poison, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = [  # an outside producer writes raw entries: `data` alone, or worse
        {"data": b'{"id": "missing-n"}'},
        {"data": b'{"id": "bad-n", "n": "seven"}'},
        {"data": b"not json at all"},
        {"data": b"\xff\xfe not utf-8"},
        {"data": b'{"id": "big", "n": 1, "pad": "' + b"x" * 1_100_000 + b'"}'},
        {"payload": b"no data field"},
    ]
    for fields in outside:
        poison.r.xadd(JOBS, fields)  # type: ignore[arg-type]
    poison.submit([{"id": f"good-{i}", "n": i} for i in range(10)])
    with poison.running():
        poison.until(lambda: len(poison.done()) == 10 and poison.r.xlen(DLQ) == len(outside))
        letters = poison.letters(capsys)
    assert [x["deliveries"] for x in letters] == [1] * len(outside)  # never retried
    errors = [x["error"] for x in letters]
    assert "invalid Job payload" in errors[0] and "n\n  Field required" in errors[0]
    assert "invalid Job payload" in errors[1] and "valid integer" in errors[1]
    assert "invalid Job payload" in errors[2] and "Invalid JSON" in errors[2]
    assert "invalid Job payload" in errors[3]
    assert errors[4] == f"payload of {len(outside[4]['data'])} bytes exceeds 1048576"
    assert errors[5] == "entry has no `data` field (the payload's JSON)"
    assert poison.r.xpending(JOBS, "work")["pending"] == 0
    # A letter with no payload cannot be re-driven: refused by name, nothing moves.
    code, out = poison.cli(capsys, "redrive", "--id", letters[5]["id"])
    assert code == 1 and "it has no payload" in out
    assert poison.r.xlen(DLQ) == len(outside)


def test_messages_that_kill_their_worker_are_isolated_and_the_lane_flows_around_them(
    poison: Poison, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three jobs SIGKILL their worker, read together with good jobs. Each crash after
    the worker was ready is restarted at once; the successor re-runs what its
    predecessor held, the suspects alone, and a job that kills its worker twice while
    running alone is dead-lettered with that reason. The good jobs read with the poison
    ones are never dead-lettered, and each is done exactly once."""
    jobs = []
    for k in range(1, 4):
        jobs += [{"id": f"good-{k}{c}", "n": k} for c in "ab"]
        jobs.append({"id": f"crash-{k}", "n": k})
    jobs += [{"id": f"good-4{c}", "n": 4} for c in "ab"]
    poison.submit(jobs)  # before any worker: its first reads take several at once
    started = time.monotonic()
    with poison.running() as events:
        poison.until(lambda: poison.r.xlen(DLQ) >= 3 and len(poison.done()) >= 8)
        poison.until(lambda: poison.r.xpending(JOBS, "work")["pending"] == 0)
        elapsed = time.monotonic() - started
        letters = poison.letters(capsys)
        assert sorted(x["data"]["id"] for x in letters) == ["crash-1", "crash-2", "crash-3"]
        for letter in letters:
            assert "died 2 times while handling it alone" in letter["error"]
        good = sorted(j["id"] for j in jobs if j["id"].startswith("good"))
        assert sorted(poison.done()) == good
        kills = [e for e in events if e.kind == "exit" and e.returncode == -9]
        # per poison: twice alone, after at most one crash with others in flight
        assert 6 <= len(kills) <= 9
        assert {e.delay for e in kills} == {0.1}  # restarted at once: it had been ready
        poison.fixed.touch()
        assert poison.cli(capsys, "redrive")[0] == 0
        poison.until(lambda: all(f"crash-{k}" in poison.done() for k in range(1, 4)))
    assert {k: len(v) for k, v in poison.done().items()} == {j["id"]: 1 for j in jobs}
    print(f"3 poison jobs isolated, 8 good ones done in {elapsed:.1f} s")
