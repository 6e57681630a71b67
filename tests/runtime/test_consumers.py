"""Stale consumers are removed; a consumer that holds an entry never is.

The attack it answers is slow: every host rename and every scale-down leaves consumer
names in the groups (13 on one group after a day of restarts), and ``meshc status``
lists them forever. The idle bound is shortened here (``floor``) so the test need not
wait five minutes; the rule is the same.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
import redis
from cli_kit import cli, wait_for
from meshc.codegen.build import build_cached
from meshc.runtime.process import consumers
from meshc.runtime.scripts import RETRY_CONSUMER
from meshc.runtime.spec import MeshSpec

MESH = """\
    mesh: tidy
    version: 1
    types:
      Line: {text: str}
    streams:
      t.in: {type: Line}
      t.out: {type: Line, terminal: true}
    defaults:
      visibility_timeout: 20ms
    agents:
      feed: {role: producer, writes: [t.in]}
      echo: {role: specialist, reads: [t.in], writes: [t.out], handler: tidy_handlers:echo}
"""
FLOOR = 0.3  # seconds; 10 x the visibility timeout (0.2 s) is shorter, so this bounds it


@pytest.fixture
def mesh(tmp_path: Path) -> tuple[Path, MeshSpec]:
    path = tmp_path / "tidy.yaml"
    path.write_text(textwrap.dedent(MESH), encoding="utf-8")
    return path, build_cached(str(path), tmp_path).load_spec()


def _names(r: redis.Redis) -> dict[str, int]:
    """Consumer name → pending entries, on the echo group."""
    return {c["name"].decode(): int(c["pending"]) for c in r.xinfo_consumers("t.in", "echo")}


def _stale_world(url: str) -> redis.Redis:
    """A group with a consumer long gone (nothing pending), one that died holding an
    entry, the retry consumer, all idle; the caller adds a live one."""
    r = redis.Redis.from_url(url)
    r.xgroup_create("t.in", "echo", id="0", mkstream=True)
    r.xadd("t.in", {"data": b'{"text": "a"}'})
    r.xadd("t.in", {"data": b'{"text": "b"}'})
    done = r.xreadgroup("echo", "oldhost-echo-0", {"t.in": ">"}, count=1)
    r.xack("t.in", "echo", done[0][1][0][0])
    r.xreadgroup("echo", "oldhost-echo-3", {"t.in": ">"}, count=1)  # dies holding it
    r.xgroup_createconsumer("t.in", "echo", RETRY_CONSUMER)
    return r


def test_only_idle_consumers_with_nothing_pending_are_removed(
    valkey_url: str, mesh: tuple[Path, MeshSpec]
) -> None:
    path, spec = mesh
    r = _stale_world(valkey_url)
    try:
        assert consumers.reap(spec, valkey_url, floor=FLOOR) == []  # none idle long enough
        time.sleep(FLOOR + 0.1)  # a lower bound: they must have been idle this long
        r.xadd("t.in", {"data": b'{"text": "c"}'})
        alive = r.xreadgroup("echo", "host-echo-0", {"t.in": ">"}, count=1)  # just now
        r.xack("t.in", "echo", alive[0][1][0][0])  # nothing pending: kept for being alive
        removed = consumers.reap(spec, valkey_url, floor=FLOOR)
        assert removed == [consumers.Removed("t.in", "echo", "oldhost-echo-0")]
        assert _names(r) == {"oldhost-echo-3": 1, RETRY_CONSUMER: 0, "host-echo-0": 0}
        status = cli("status", str(path), "--redis", valkey_url)
        assert status.code == 0, status.err
        assert "oldhost-echo-3" in status.out and "oldhost-echo-0" not in status.out
    finally:
        r.close()


def test_the_bound_is_ten_visibility_timeouts_or_five_minutes() -> None:
    assert consumers.idle_bound(30.0) == 300.0
    assert consumers.idle_bound(60.0) == 600.0
    assert consumers.idle_bound(0.02, floor=0.3) == 0.3


def test_groups_not_created_yet_are_skipped(valkey_url: str, mesh: tuple[Path, MeshSpec]) -> None:
    assert consumers.reap(mesh[1], valkey_url, floor=FLOOR) == []


def test_the_reaper_beside_a_running_mesh_removes_them_on_its_own(
    valkey_url: str, mesh: tuple[Path, MeshSpec]
) -> None:
    r = _stale_world(valkey_url)
    reaper = consumers.start_reaper(mesh[1], valkey_url, floor=FLOOR)
    assert reaper is not None
    try:
        wait_for(lambda: "oldhost-echo-0" not in _names(r), 30, "the stale consumer removed")
        assert _names(r)["oldhost-echo-3"] == 1
        assert reaper.removed == [consumers.Removed("t.in", "echo", "oldhost-echo-0")]
    finally:
        reaper.stop()
        r.close()
