"""``meshc replay``: one agent again over a range of its input, through a fresh group;
the live group untouched, the replay group gone afterwards."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import redis
from cli_kit import cli

MESH = """\
    mesh: again
    version: 1
    types:
      Line: {text: str}
    streams:
      e.in: {type: Line}
      e.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [e.in]}
      echo: {role: specialist, reads: [e.in], writes: [e.out], handler: again_handlers:echo}
"""


@pytest.fixture
def mesh_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "again_handlers.py").write_text(
        "def echo(payload, ctx):\n    return {'text': payload.text.upper()}\n", encoding="utf-8"
    )
    (tmp_path / "again.yaml").write_text(textwrap.dedent(MESH), encoding="utf-8")
    return str(tmp_path / "again.yaml")


def live_group(r: redis.Redis) -> dict[str, object]:
    (g,) = r.xinfo_groups("e.in")
    return {k: g[k] for k in ("name", "pending", "last-delivered-id", "consumers")}


def test_replay_runs_the_range_through_a_fresh_group(valkey_url: str, mesh_file: str) -> None:
    r = redis.Redis.from_url(valkey_url)
    ids = [r.xadd("e.in", {"data": f'{{"text": "t{i}"}}', "trace": f"tr{i}"}) for i in range(10)]
    r.xgroup_create("e.in", "echo", id="0")
    r.xreadgroup("echo", "live", {"e.in": ">"}, count=4)
    r.xack("e.in", "echo", ids[0], ids[1])
    before = live_group(r)
    start, end = ids[3].decode(), ids[7].decode()
    args = ("replay", mesh_file, "echo", "--redis", valkey_url, "--from", start, "--to", end)

    counted = cli(*args, "--dry-run")
    assert counted.code == 0, counted.err
    assert counted.out.startswith("would replay 5 entries (e.in 5) through echo into e.out")
    assert r.xlen("e.out") == 0

    done = cli(*args)
    assert done.code == 0, done.err
    assert "replayed 5 entries" in done.out and "5 committed" in done.out
    rows = r.xrange("e.out")
    assert [f[b"parent"] for _, f in rows] == ids[3:8]  # the range, each once, in order
    assert [f[b"data"] for _, f in rows][0] == b'{"text":"T3"}'
    assert {f[b"trace"] for _, f in rows} == {f"tr{i}".encode() for i in range(3, 8)}
    assert {f[b"agent"] for _, f in rows} == {b"echo"}
    assert live_group(r) == before  # the live group is untouched
    assert [g["name"] for g in r.xinfo_groups("e.in")] == [b"echo"]  # the replay's is gone
    r.close()


def test_a_range_outside_what_is_retained_is_refused(valkey_url: str, mesh_file: str) -> None:
    r = redis.Redis.from_url(valkey_url)
    ids = [r.xadd("e.in", {"data": '{"text": "x"}'}).decode() for _ in range(6)]
    r.xtrim("e.in", maxlen=3, approximate=False)
    base = ("replay", mesh_file, "echo", "--redis", valkey_url)
    gone = cli(*base, "--from", ids[0], "--to", ids[1])
    assert gone.code == 1 and "ends before the oldest entry retained" in gone.err
    assert f"retains entries {ids[3]} to {ids[5]}" in gone.err
    future = cli(*base, "--from", "2100-01-01T00:00:00Z")
    assert future.code == 1 and "no entry lies in it" in future.err
    assert cli(*base, "--from", ids[4], "--to", ids[3]).code == 1
    bad = cli(*base, "--from", "yesterday")
    assert bad.code == 1 and "give an entry id" in bad.err and "Traceback" not in bad.err
    assert r.xlen("e.out") == 0 and r.xinfo_groups("e.in") == []
    r.close()
