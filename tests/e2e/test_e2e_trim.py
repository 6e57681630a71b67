"""``meshc trim`` and the retention part of ``meshc status`` on the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import redis
from e2e_kit import cli, write_mesh

MESH = """\
    mesh: keep
    types:
      Line: {text: str}
    streams:
      t.in: {type: Line, retention: {maxlen: 3}}
      t.out: {type: Line, terminal: true, retention: {max_age: 1h}}
      t.log: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [t.in]}
      echo: {role: specialist, reads: [t.in], writes: [t.out, t.log], handler: h:echo}
"""


def _fill(url: str) -> list[bytes]:
    with redis.Redis.from_url(url) as r:
        ids = [r.xadd("t.in", {"data": b'{"text": "x"}'}) for _ in range(10)]
        r.xgroup_create("t.in", "echo", id="0")
        r.xreadgroup("echo", "c", {"t.in": ">"}, count=6)
        r.xack("t.in", "echo", *ids[:4])  # ids[4] and ids[5] stay pending
        return ids


def test_trim_dry_run_then_trim(workdir: Path, valkey_url: str) -> None:
    path = str(write_mesh(workdir, "keep", MESH))
    ids = _fill(valkey_url)
    dry = cli("trim", path, "--redis", valkey_url, "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.lines[0].split() == ["STREAM", "RETENTION", "BEFORE", "AFTER", "WOULD", "REMOVE",
                                    "HELD", "BACK", "BY"]  # fmt: skip
    assert dry.lines[1].split()[:6] == ["t.in", "maxlen", "3", "10", "6", "4"]
    assert f"group echo: oldest pending entry {ids[4].decode()} (on t.in)" in dry.lines[1]
    assert dry.lines[2].split()[:6] == ["t.out", "max_age", "3600s", "0", "0", "0"]
    assert len(dry.lines) == 3  # t.log has no retention
    done = cli("trim", path, "--redis", valkey_url, "--format", "json")
    report = orjson.loads(done.out)
    assert report["dry_run"] is False and report["mesh"] == "keep"
    first = report["streams"][0]
    assert (first["length_before"], first["removed"], first["length_after"]) == (10, 4, 6)
    assert first["held_by"] == [
        {"key": "t.in", "group": "echo", "reason": "pending", "entry": ids[4].decode()}
    ]
    status = cli("status", path, "--redis", valkey_url)
    row = next(line for line in status.lines if line.startswith("t.in") and "maxlen" in line)
    assert row.split()[3] == "4" and row.endswith(
        f"oldest pending entry {ids[4].decode()} (on t.in)"
    )
    row = next(line for line in status.lines if line.startswith("t.out") and "max_age" in line)
    assert row.split()[3] == "0" and row.split()[5:] == ["ago", "-"]  # looked: nothing to do


def test_trim_without_a_server_says_how_to_start_one(workdir: Path) -> None:
    path = str(write_mesh(workdir, "keep", MESH))
    out = cli("trim", path)
    assert out.code == 2 and "meshc server start" in out.err


def test_trim_of_an_invalid_mesh_prints_its_diagnostics(workdir: Path, valkey_url: str) -> None:
    path = str(write_mesh(workdir, "bad", "mesh: bad\nstreams: {s: {type: Nope}}\n"))
    out = cli("trim", path, "--redis", valkey_url)
    assert out.code == 1 and "MESH201" in out.out and "Traceback" not in out.err
