"""``server``, ``submit``, ``tail``, ``status`` and ``dlq`` on a small mesh, as a user
types them: a poison message dead-letters, its cause is fixed, ``dlq redrive`` sends
it through."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from e2e_kit import Outcome, build, cli, wait_for, write_mesh, xlen
from meshc.demo import running_workers
from meshc.runtime.process.server import server_status

MESH = """\
    mesh: poison
    version: 1
    types:
      Item: {id: str, text: str}
    streams:
      p.in: {type: Item}
      p.out: {type: Item, terminal: true}
    agents:
      feed: {role: producer, writes: [p.in]}
      shout:
        role: specialist
        reads: [p.in]
        writes: [p.out]
        handler: poison_handlers:shout
        max_deliveries: 2
        visibility_timeout: 200ms
"""
HANDLERS = """\
    from pathlib import Path

    CURED = Path(__file__).with_name("cured")

    def shout(payload, ctx):
        if payload.text == "poison" and not CURED.exists():
            raise ValueError("poisoned payload")
        return {"id": payload.id, "text": payload.text.upper()}
"""
BACKLOG_MESH = """\
    mesh: bounded
    version: 1
    types:
      Item: {id: str}
    streams:
      b.in: {type: Item, max_backlog: 2}
      b.out: {type: Item, terminal: true}
    agents:
      feed: {role: producer, writes: [b.in]}
      copy: {role: specialist, reads: [b.in], writes: [b.out], handler: nowhere:copy}
"""
SUBMITTED = re.compile(r"^\d+-\d+ [0-9a-f]{32}$")


def _submitted(done: Outcome, count: int) -> list[str]:
    """The traces printed by a successful submit."""
    assert done.code == 0, done.err
    assert len(done.lines) == count and all(SUBMITTED.match(line) for line in done.lines)
    return [line.split()[1] for line in done.lines]


def test_commands_without_a_server_say_how_to_start_one(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "poison", MESH, HANDLERS))
    for args in (["status", mesh], ["tail", mesh, "p.out"], ["dlq", "list", mesh, "shout"]):
        done = cli(*args)
        assert done.code == 2, args
        assert "meshc server start" in done.err and "Traceback" not in done.err
    assert cli("server", "status").code == 1
    gone = cli("status", str(workdir / "missing.yaml"), "--redis", "redis://127.0.0.1:1")
    assert gone.code == 2 and "missing.yaml" in gone.err
    unreachable = cli("status", mesh, "--redis", "redis://127.0.0.1:1")
    assert unreachable.code == 2 and "cannot reach the server" in unreachable.err


def test_poison_message_is_dead_lettered_listed_and_redriven(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "poison", MESH, HANDLERS))
    started = cli("server", "start")
    assert started.code == 0 and "running at redis://" in started.out
    assert cli("server", "status").code == 0
    address = started.out.split(" at ")[1].split()[0]
    info = server_status()
    assert info is not None and info.address == address
    url = info.url  # with the folder's password, as every command reads it
    built, spec = build(Path(mesh))
    with running_workers(spec, built, url):
        one = _submitted(cli("submit", mesh, "p.in", "--json", '{"id": "a", "text": "hello"}'), 1)
        lines = '{"id": "b", "text": "poison"}\n\n{"id": "c", "text": "world"}\n'
        two = _submitted(cli("submit", mesh, "p.in", stdin=lines), 2)

        bad_json = cli("submit", mesh, "p.in", stdin='{"id": "d", "text": "x"}\n{"id": \n')
        assert bad_json.code == 1 and "stdin:2: invalid JSON" in bad_json.err
        misfit = cli("submit", mesh, "p.in", stdin='{"id": 5}\n')
        assert misfit.code == 1 and "stdin:1: does not fit p.in (Item)" in misfit.err
        assert "text: Field required" in misfit.err and "nothing was submitted" in misfit.err
        outside = cli("submit", mesh, "p.out", "--json", '{"id": "z", "text": "t"}')
        assert outside.code == 1 and "intake stream" in outside.err
        assert xlen(url, "p.in") == 3

        wait_for(lambda: xlen(url, "p.out") == 2, what="two results")
        wait_for(lambda: xlen(url, "poison.dlq.shout") == 1, what="one dead letter")

        tail = cli("tail", mesh, "p.out")
        assert tail.code == 0, tail.err
        entries = tail.json_lines()
        assert [e["data"]["text"] for e in entries] == ["HELLO", "WORLD"]
        assert [e["trace"] for e in entries] == [one[0], two[1]]
        assert all(e["agent"] == "shout" and e["attempt"] == 1 for e in entries)
        assert len(cli("tail", mesh, "p.out", "--count", "1").lines) == 1
        after_first = cli("tail", mesh, "p.out", "--from", entries[0]["id"]).json_lines()
        assert [e["id"] for e in after_first] == [entries[1]["id"]]
        assert cli("tail", mesh, "p.out", "--from", "$").out == ""
        assert cli("tail", mesh, "p.out", "--from", "yesterday").code == 2

        status = cli("status", mesh, "--format", "json")
        assert status.code == 0, status.err
        report = orjson.loads(status.out)
        assert report["agents"]["shout"]["dead_letters"] == 1
        group = report["streams"]["p.in"]["groups"]["shout"]
        assert (group["lag"], group["pending"], len(group["consumers"])) == (0, 0, 1)
        text = cli("status", mesh).out
        assert re.search(r"^p\.in\s+3\s", text, re.M)
        assert re.search(r"^shout\s+specialist\s+1\b", text, re.M)

        listed = cli("dlq", "list", mesh, "shout")
        assert listed.code == 0, listed.err
        assert "from p.in" in listed.out and "deliveries 2" in listed.out
        assert "poisoned payload" in listed.out and '"text":"poison"' in listed.out
        letters = orjson.loads(cli("dlq", "list", mesh, "shout", "--format", "json").out)
        (letter,) = letters["dead_letters"]
        assert letter["trace"] == two[0] and letter["source_stream"] == "p.in"
        assert cli("dlq", "list", mesh, "nobody").code == 1

        assert cli("dlq", "redrive", mesh, "shout", "--id", "1-1").code == 1
        (workdir / "cured").touch()
        redriven = cli("dlq", "redrive", mesh, "shout", "--id", letter["id"])
        assert redriven.code == 0 and "re-drove 1 dead letter of shout" in redriven.out
        wait_for(lambda: xlen(url, "p.out") == 3, what="the re-driven result")
    last = cli("tail", mesh, "p.out", "--from", entries[1]["id"]).json_lines()
    assert [(e["trace"], e["data"]["text"]) for e in last] == [(two[0], "POISON")]
    assert "no dead letters" in cli("dlq", "list", mesh, "shout").out
    assert cli("server", "stop").out.strip() == "embedded server stopped"
    assert cli("server", "status").code == 1


def test_submit_refuses_past_the_backlog_bound(server: str, workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "bounded", BACKLOG_MESH))
    three = '{"id": "1"}\n{"id": "2"}\n{"id": "3"}\n'
    refused = cli("submit", mesh, "b.in", stdin=three)
    assert refused.code == 1 and "refused" in refused.err and "max_backlog=2" in refused.err
    assert xlen(server, "b.in") == 0  # all or nothing
    _submitted(cli("submit", mesh, "b.in", stdin='{"id": "1"}\n{"id": "2"}\n'), 2)
    assert cli("submit", mesh, "b.in", "--json", '{"id": "3"}').code == 1
    assert cli("submit", mesh, "b.nope", "--json", '{"id": "3"}').code == 2
    assert cli("submit", mesh, "b.in", stdin="\n").code == 2  # no task at all


def test_an_invalid_mesh_prints_its_diagnostics(server: str, workdir: Path) -> None:
    broken = write_mesh(workdir, "broken", MESH.replace("writes: [p.out]", "writes: [p.nope]"))
    for args in (["status", str(broken)], ["run", str(broken)]):
        done = cli(*args)
        assert done.code == 1, args
        assert "MESH104" in done.out and "p.nope" in done.out
