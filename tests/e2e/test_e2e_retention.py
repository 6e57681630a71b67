"""Retention while a mesh runs: ``meshc run --acl`` trims in the background (as the
operator user), thousands of tasks flow through, and every stream keeps its bound.

Between two passes a stream grows by what arrives, and the entries its readers
finish are trimmed at the next pass; so the check made while tasks flow is the one
a pass guarantees: below the point where the last pass on a stream stopped (the
first entry some group had not finished, or the end of the stream when nothing held
it), at most ``maxlen`` entries remain. It is read in one script with the pass's own
record, so it never races the loop. When the work is done and two more passes have
run, every stream is within its bound; no task is lost on the way (every one gives
exactly one result), and the removal counters add up to what was written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import redis
from e2e_kit import build, cli, wait_for, write_mesh
from meshc.ops.acl import with_credentials
from meshc.ops.client import MeshClient
from meshc.runtime import keys

MAXLEN = 40
TASKS, BATCH = 3000, 20  # a batch every 50 ms: 7.5 s of traffic, many passes
MESH = f"""\
    mesh: kept
    version: 1
    types:
      Item: {{n: int}}
    streams:
      k.in: {{type: Item, retention: {{maxlen: {MAXLEN}}}}}
      k.mid: {{type: Item, retention: {{maxlen: {MAXLEN}}}}}
      k.out: {{type: Item, terminal: true, retention: {{maxlen: {MAXLEN}}}}}
    agents:
      feed: {{role: producer, writes: [k.in]}}
      first: {{role: specialist, reads: [k.in], writes: [k.mid], handler: kept_handlers:step}}
      second: {{role: specialist, reads: [k.mid], writes: [k.out], handler: kept_handlers:step}}
"""
HANDLERS = """\
    def step(payload, ctx):
        return {"n": payload.n}
"""
STREAMS = ("k.in", "k.mid", "k.out")

# Entries below the point where the stream's last pass stopped; -1 before any pass.
BELOW_LAST_STOP = """
local flat, rec = redis.call('HGETALL', KEYS[2]), {}
for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
if not rec['checked'] then return -1 end
local point = rec['held_at'] or (rec['checked'] .. '-0')
return #redis.call('XRANGE', KEYS[1], '-', '(' .. point, 'COUNT', tonumber(ARGV[1]) + 1)
"""


def test_running_mesh_keeps_every_stream_within_its_bound(workdir: Path) -> None:
    path = write_mesh(workdir, "kept", MESH, HANDLERS)
    log = workdir / "run.log"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with open(log, "wb") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", str(path), "--acl"],
            cwd=workdir, env=env, stderr=err,
        )  # fmt: skip
    try:
        wait_for(lambda: "retention: trimming" in log.read_text(), what="the retention loop")
        url = _operator_url(workdir)
        _, spec = build(path)
        with MeshClient(spec, url) as client, redis.Redis.from_url(url) as r:
            passes = _flow(client, r)
            assert passes >= 3, "the loop should trim several times while tasks flow"
            wait_for(lambda: _added(r, "k.out") == TASKS, what="every result")
            _two_passes(r)
            assert [r.xlen(s) for s in STREAMS] == [MAXLEN] * 3
            _accounting(r, TASKS)
            status = cli("status", str(path), "--redis", url, "--format", "json")
            assert orjson.loads(status.out)["streams"]["k.in"]["retention"]["held_by"] == []
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(60)
    assert run.returncode == 0, log.read_text()
    assert "trimmed away" not in log.read_text() and "Traceback" not in log.read_text()


def _operator_url(workdir: Path) -> str:
    wait_for(lambda: (workdir / ".meshc" / "acl-secrets.json").exists(), what="ACL secrets")
    secrets = orjson.loads((workdir / ".meshc" / "acl-secrets.json").read_bytes())
    server = orjson.loads((workdir / ".meshc" / "server.json").read_bytes())["url"]
    return with_credentials(server, "kept.operator", secrets["kept.operator"])


def _flow(client: MeshClient, r: redis.Redis) -> int:
    """Submit the tasks in small batches while another thread checks every stream;
    how many passes the loop made on the intake meanwhile."""
    record = keys.retention_record("kept", "k.in")
    passes, last = 0, None
    stop = threading.Event()
    checks: list[int | BaseException] = []
    checker = threading.Thread(target=_check_while_running, args=(r, stop, checks))
    checker.start()
    try:
        for start in range(0, TASKS, BATCH):
            client.submit_many([{"n": n} for n in range(start, start + BATCH)])
            checked = r.hget(record, "checked")
            passes, last = passes + (checked != last), checked
            time.sleep(0.05)
    finally:
        stop.set()
        checker.join()
    failed = [c for c in checks if isinstance(c, BaseException)]
    if failed:
        raise failed[0]
    assert checks, "no check ran while tasks flowed"
    assert max(checks) <= MAXLEN  # type: ignore[type-var]
    return passes


def _check_while_running(
    r: redis.Redis, stop: threading.Event, checks: list[int | BaseException]
) -> None:
    script = r.register_script(BELOW_LAST_STOP)
    try:
        while not stop.is_set():
            for s in STREAMS:
                below = int(script(keys=[s, keys.retention_record("kept", s)], args=[MAXLEN]))
                if below >= 0:
                    checks.append(below)
            time.sleep(0.01)
    except redis.RedisError as err:
        checks.append(err)


def _added(r: redis.Redis, stream: str) -> int:
    return int(r.xinfo_stream(stream)["entries-added"])


def _two_passes(r: redis.Redis) -> None:
    """Wait until the loop has looked at every stream twice more."""
    for _ in range(2):
        seen = {s: r.hget(keys.retention_record("kept", s), "checked") for s in STREAMS}
        wait_for(
            lambda seen=seen: all(  # type: ignore[misc]
                r.hget(keys.retention_record("kept", s), "checked") != seen[s] for s in STREAMS
            ),
            what="a retention pass",
        )


def _accounting(r: redis.Redis, tasks: int) -> None:
    """One result per task, nothing dead-lettered, removed + kept = written."""
    for s in STREAMS:
        removed = int(r.hget(keys.retention_record("kept", s), "removed") or 0)
        assert _added(r, s) == tasks
        assert removed + r.xlen(s) == tasks
    assert all(r.xlen(f"kept.dlq.{a}") == 0 for a in ("first", "second"))
