"""``meshc submit``: JSON output per entry, and a stream name it does not know gets a
"did you mean" (so does ``meshc tail``)."""

from __future__ import annotations

from pathlib import Path

import redis
from e2e_kit import cli, write_mesh

MESH = """\
    mesh: intake
    version: 1
    types:
      Item: {id: str}
    streams:
      jobs.in: {type: Item}
      jobs.done: {type: Item, terminal: true}
    agents:
      feed: {role: producer, writes: [jobs.in]}
      work: {role: specialist, reads: [jobs.in], writes: [jobs.done], handler: nowhere:work}
"""


def test_submit_prints_one_json_object_per_entry(server: str, workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "intake", MESH))
    done = cli("submit", mesh, "jobs.in", "--format", "json", stdin='{"id": "a"}\n{"id": "b"}\n')
    assert done.code == 0, done.err
    objects = done.json_lines()
    assert [sorted(o) for o in objects] == [["id", "stream", "trace"]] * 2
    assert {o["stream"] for o in objects} == {"jobs.in"}
    with redis.Redis.from_url(server, decode_responses=True) as client:
        written = client.xrange("jobs.in")
    assert [o["id"] for o in objects] == [entry_id for entry_id, _ in written]
    assert [o["trace"] for o in objects] == [fields["trace"] for _, fields in written]


def test_submit_text_output_stays_as_it_was(server: str, workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "intake", MESH))
    done = cli("submit", mesh, "jobs.in", "--json", '{"id": "a"}')
    assert done.code == 0, done.err
    entry_id, trace = done.out.split()
    assert entry_id.count("-") == 1 and len(trace) == 32


def test_an_unknown_stream_gets_a_did_you_mean(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "intake", MESH))
    for command, *extra in (("submit", "--json", '{"id": "a"}'), ("tail",)):
        done = cli(command, mesh, "jobs.inn", *extra)
        assert done.code == 2, done.err
        assert done.err == (
            f"meshc {command}: mesh 'intake' has no stream 'jobs.inn'; did you mean 'jobs.in'?\n"
        )


def test_a_stream_like_none_lists_the_intake_streams(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "intake", MESH))
    done = cli("submit", mesh, "zzz", "--json", '{"id": "a"}')
    assert done.code == 2
    assert done.err.endswith("has no stream 'zzz'; its intake streams: jobs.in\n")
