"""``meshc rollout`` without a live run: the plan, its refusals, and ``--apply``
preparing the server for the next ``meshc run``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import redis
from cli_kit import cli
from meshc.runtime import running

V1 = """\
    mesh: roll
    version: 1
    types:
      Line: {text: str}
    streams:
      r.in: {type: Line}
      r.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [r.in]}
      echo: {role: specialist, reads: [r.in], writes: [r.out], handler: roll_handlers:echo}
"""
AUDIT = """\
      audit: {role: sink, reads: [r.out], handler: roll_handlers:echo}
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "roll_handlers.py").write_text(
        "def echo(payload, ctx):\n    return None\n", encoding="utf-8"
    )
    audit = V1.replace("version: 1", "version: 2").replace(", terminal: true", "") + AUDIT
    texts = {
        "v1": V1,
        "audit": audit,
        "breaking": V1.replace("Line: {text: str}", "Line: {text: str, lang: str}"),
        "other": V1.replace("mesh: roll", "mesh: other"),
    }  # fmt: skip
    out = {}
    for name, text in texts.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        out[name] = str(tmp_path / f"{name}.yaml")
    return out


def test_a_change_that_breaks_work_in_flight_is_refused(
    valkey_url: str, files: dict[str, str]
) -> None:
    r = redis.Redis.from_url(valkey_url)
    r.xadd("r.in", {"data": '{"text": "waiting"}'})  # unprocessed, written without `lang`
    refused = cli("rollout", files["v1"], files["breaking"], "--redis", valkey_url, "--apply")
    assert refused.code == 1
    assert "refused:" in refused.err and "lang" in refused.err and "--force" in refused.err
    assert r.hgetall(running.record_key("roll")) == {}  # nothing was changed
    forced = cli("rollout", files["v1"], files["breaking"], "--redis", valkey_url, "--force")
    assert forced.code == 0 and "breaks:" in forced.out
    other = cli("rollout", files["v1"], files["other"], "--redis", valkey_url)
    assert other.code == 1 and "a rollout moves one mesh to its next version" in other.err
    r.close()


def test_apply_without_a_run_prepares_the_server(valkey_url: str, files: dict[str, str]) -> None:
    r = redis.Redis.from_url(valkey_url)
    r.xadd("r.out", {"data": '{"text": "old"}'})
    plan = cli("rollout", files["v1"], files["audit"], "--redis", valkey_url)
    assert plan.code == 0, plan.err
    assert "create groups at the stream's end: audit on r.out" in plan.out
    assert "start: audit" in plan.out and "running: no run recorded" in plan.out
    assert r.exists("roll:@running") == 0  # a plan changes nothing
    done = cli("rollout", files["v1"], files["audit"], "--redis", valkey_url, "--apply")
    assert done.code == 0, done.err
    assert "no `meshc run` is alive: the server is ready for v2" in done.out
    (group,) = r.xinfo_groups("r.out")
    assert group["name"] == b"audit" and group["lag"] == 0  # it starts after `old`
    record = running.read_record(r, "roll")
    assert record["version"] == "2" and record["loaded"] == record["fingerprint"]
    again = cli("rollout", files["v1"], files["audit"], "--redis", valkey_url, "--apply")
    assert again.code == 0 and "already runs v2" in again.out
    r.close()
