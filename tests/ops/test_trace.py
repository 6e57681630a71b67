"""``meshc.ops.trace`` on a real server: entries written by hand in the wire format.

Each scenario writes a task's entries with explicit ids (so every time in them is
exact), plus entries of other tasks around them, then reads the task back. The
end-to-end tests (tests/e2e/test_e2e_trace.py) trace tasks that real workers ran.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from meshc.cli import build_parser
from meshc.ops.trace import TraceNotFound, read_trace
from meshc.ops.trace_model import TaskTrace
from meshc.ops.trace_view import as_json, mermaid, ms, tree
from meshc.runtime import keys
from meshc.runtime.spec import AgentSpec, JoinSpec, MeshSpec, StreamSpec
from pydantic import BaseModel

T0 = 1_700_000_000_000
MESH = "m"


class Item(BaseModel):
    id: str


def spec(partitions: int = 1, partition_key: str | None = None) -> MeshSpec:
    """feed → in → split → lane.a / lane.b → a / b → out.a / out.b → join → result."""
    names = ["in", "lane.a", "lane.b", "out.a", "out.b", "result"]
    streams = {n: StreamSpec(n, Item, terminal=n == "result") for n in names}
    join = JoinSpec(on=("id",), timeout=1.0, lanes={"out.a": "a", "out.b": "b"})
    agents = [
        AgentSpec("feed", "producer", (), ("in",), ""),
        AgentSpec("split", "coordinator", ("in",), ("lane.a", "lane.b"), "fanout"),
        AgentSpec("a", "specialist", ("lane.a",), ("out.a",), "h:a"),
        AgentSpec("b", "specialist", ("lane.b",), ("out.b",), "h:b"),
        AgentSpec("join", "aggregator", ("out.a", "out.b"), ("result",), "merge", join=join),
    ]
    return MeshSpec(MESH, 1, streams, {a.name: a for a in agents}, partitions, partition_key)


@pytest.fixture
def r(valkey_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_url)
    yield client
    client.close()


def at(ms_: int, seq: int = 0) -> str:
    return f"{T0 + ms_}-{seq}"


def add(
    r: redis.Redis,
    key: str,
    eid: str,
    trace: str | None,
    parent: str = "",
    agent: str = "",
    took: str | None = None,
    data: Any = None,
    **extra: str,
) -> str:
    """XADD one entry in the wire format; ``trace=None`` writes ``data`` alone."""
    raw = (
        data if isinstance(data, bytes) else orjson.dumps(data if data is not None else {"id": "x"})
    )
    fields: dict[str, Any] = {"data": raw}
    if trace is not None:
        fields |= {"trace": trace, "parent": parent, "agent": agent, "attempt": "1"}
    if took is not None:
        fields["took"] = took
    fields |= extra
    return str(r.xadd(key, fields, id=eid).decode())


def whole_task(r: redis.Redis, trace: str, base: int = 0, key: str = "") -> None:
    """A task that went everywhere: both lanes share an entry id, as one commit makes them."""
    tag = key
    add(r, "in" + tag, at(base), trace, agent="feed")
    add(r, "lane.a" + tag, at(base + 10), trace, at(base), "split", "3")
    add(r, "lane.b" + tag, at(base + 10), trace, at(base), "split", "3")
    add(r, "out.a" + tag, at(base + 20), trace, at(base + 10), "a", "4")
    add(r, "out.b" + tag, at(base + 35), trace, at(base + 10), "b", "20.5")
    summary = {"id": "x", "missing": []}
    add(r, "result" + tag, at(base + 40), trace, at(base + 35), "join", "1", summary)


def test_a_whole_task_with_its_timings(r: redis.Redis) -> None:
    whole_task(r, "other", base=-5)  # another task, entirely before
    whole_task(r, "t1", base=0)
    whole_task(r, "later", base=7)  # and one interleaved with it
    found = read_trace(r, spec(), "t1")
    assert found.status == "completed"
    assert found.root is not None and found.root.id == at(0) and found.root.agent == "feed"
    assert found.agents == ["feed", "split", "a", "b", "join"]
    assert len(found.entries) == 6 and {e.id for e in found.entries} >= {at(0), at(40)}
    split, a, b, join = found.hops
    assert split.trigger is found.root and [e.stream for e in split.outputs] == ["lane.a", "lane.b"]
    assert (split.total_ms, split.took_ms, split.wait_ms) == (10, 3.0, 7.0)
    # lane.a and lane.b hold the same id: each specialist's input is the one on its stream
    assert a.trigger is not None and a.trigger.stream == "lane.a"
    assert b.trigger is not None and b.trigger.stream == "lane.b"
    assert (a.total_ms, a.wait_ms, b.total_ms, b.wait_ms) == (10, 6.0, 25, 4.5)
    assert join.join and [e.stream for e in join.inputs] == ["out.a", "out.b"]
    assert join.lanes == ("a", "b") and join.trigger is b.outputs[0]  # the last partial
    assert (join.total_ms, join.wait_ms, join.missing) == (5, 4.0, [])
    assert [e.id for e in found.results] == [at(40)]
    assert not found.open_ends and not found.dead_letters
    assert found.scan.partitions == [0] and not found.scan.truncated
    assert found.scan.entries >= 6 * 2  # the interleaved task's entries were read too


def test_a_join_is_timed_from_its_newest_partial(r: redis.Redis) -> None:
    add(r, "in", at(0), "tj", agent="feed")
    add(r, "lane.a", at(1), "tj", at(0), "split")
    add(r, "lane.b", at(1), "tj", at(0), "split")
    add(r, "out.a", at(20), "tj", at(1), "a")
    add(r, "out.b", at(35), "tj", at(1), "b")
    # the runtime names the partial stored last in its batch, here not the newest one
    add(r, "result", at(40), "tj", at(20), "join", "1", {"id": "x", "missing": []})
    found = read_trace(r, spec(), "tj")
    join = found.hops[-1]
    assert join.trigger is not None and join.trigger.stream == "out.a"
    assert join.ready is not None and join.ready.stream == "out.b"
    assert (join.total_ms, join.wait_ms) == (5, 4.0)
    text = tree(found)
    assert "join of 2 partials (a, b), 5 ms after the last (b) = waited 4 ms + handler 1 ms" in text
    assert text.index("out.b") < text.index("join (attempt 1)") < text.index("result  ")


def test_the_traceparent_of_each_hop_is_shown(r: redis.Redis) -> None:
    """While tracing, each entry names the span that wrote it (``traceparent``)."""
    otel = "0af7651916cd43dd8448eb211c80319c"
    add(r, "in", at(0), "tp", agent="feed", traceparent=f"00-{otel}-00f067aa0ba902b7-01")
    add(r, "lane.a", at(5), "tp", at(0), "split", traceparent=f"00-{otel}-b7ad6b7169203331-01")
    found = read_trace(r, spec(), "tp")
    text = tree(found)
    assert f"otel trace {otel}" in text.splitlines()[1]
    assert "span b7ad6b7169203331" in next(line for line in text.splitlines() if "split" in line)
    lane = next(e for e in json.loads(as_json(found))["entries"] if e["stream"] == "lane.a")
    assert lane["traceparent"] == f"00-{otel}-b7ad6b7169203331-01"
    whole_task(r, "plain", base=100)
    assert "span " not in tree(read_trace(r, spec(), "plain"))


def test_a_hop_without_took_shows_its_total_only(r: redis.Redis) -> None:
    add(r, "in", at(0), "t", agent="feed")
    add(r, "lane.a", at(12), "t", at(0), "split")
    add(r, "lane.b", at(12), "t", at(0), "split", took="soon", attempt="x", data=b"{not json")
    found = read_trace(r, spec(), "t")
    (hop,) = found.hops
    assert (hop.total_ms, hop.took_ms, hop.wait_ms) == (12, None, None)
    assert "12 ms in all" in tree(found)
    foreign = found.entries[-1]  # header fields a foreign writer got wrong: shown as absent
    assert (foreign.stream, foreign.took_ms, foreign.attempt, foreign.data) == (
        "lane.b",
        None,
        1,
        None,
    )


def test_a_dead_letter_says_where_and_why(r: redis.Redis) -> None:
    add(r, "in", at(0), "t2", agent="feed")
    add(r, keys.dlq_stream(MESH, "split"), at(300), "t2", agent="split", error="ValueError: boom",
        source_stream="in", source_id=at(0), deliveries="3")  # fmt: skip
    found = read_trace(r, spec(), "t2")
    assert found.status == "dead-lettered"
    (hop,) = found.hops
    assert hop.dead and hop.trigger is found.root and hop.attempt == 3 and hop.total_ms == 300
    (letter,) = found.dead_letters
    assert letter.stream == "m.dlq.split" and letter.extra["error"] == "ValueError: boom"
    text = tree(found, ascii=True)
    assert "gave up: ValueError: boom" in text
    assert "dead letter m.dlq.split" in text and "after 3 deliveries of in " + at(0) in text


def test_a_join_that_timed_out(r: redis.Redis) -> None:
    add(r, "in", at(0), "t3", agent="feed")
    add(r, "lane.a", at(1), "t3", at(0), "split")
    add(r, "out.a", at(2), "t3", at(1), "a")
    add(r, "result", at(1002), "t3", at(2), "join", data={"id": "x", "missing": ["b"]})
    found = read_trace(r, spec(), "t3")
    (join,) = found.timed_out
    assert join.missing == ["b"] and join.inputs == (found.hops[1].outputs[0],)
    assert found.status == "completed (join timed out)"
    assert "timed out, missing: b" in tree(found)


def test_entries_not_finished_yet_say_who_holds_them(r: redis.Redis) -> None:
    add(r, "in", at(0), "t4", agent="feed")
    add(r, "lane.a", at(1), "t4", at(0), "split")
    add(r, "lane.b", at(1), "t4", at(0), "split")
    add(r, "out.b", at(5), "t4", at(1), "b")
    r.xgroup_create("lane.a", "a", id="0")
    r.xreadgroup("a", "a-replica-1", {"lane.a": ">"})  # delivered, not acknowledged
    r.xgroup_create("out.b", "join", id="0")
    r.xreadgroup("join", "join-1", {"out.b": ">"})
    r.xack("out.b", "join", at(5))  # stored in the join, lane a still to come
    found = read_trace(r, spec(), "t4")
    ends = {(o.agent, o.entry.stream): o for o in found.open_ends}
    assert set(ends) == {("a", "lane.a"), ("join", "out.b")}
    held = ends[("a", "lane.a")]
    assert (held.state, held.consumer, held.deliveries) == ("pending", "a-replica-1", 1)
    assert (ends[("join", "out.b")].state, ends[("join", "out.b")].missing) == ("joining", ("a",))
    assert found.status == "in flight"
    text = tree(found)
    assert "consumer a-replica-1 holds it" in text and "waiting for a" in text


def test_late_partials_and_entries_not_yet_delivered(r: redis.Redis) -> None:
    add(r, "in", at(0), "t5", agent="feed")
    add(r, "lane.a", at(10), "t5", at(0), "split")
    add(r, "lane.b", at(10), "t5", at(0), "split")
    add(r, "out.a", at(20), "t5", at(10), "a")
    add(r, "result", at(1020), "t5", at(20), "join", data={"id": "x", "missing": ["b"]})
    add(r, "out.b", at(1500), "t5", at(10), "b")  # after the join timed out
    r.xgroup_create("out.b", "join", id="0")
    r.xreadgroup("join", "j", {"out.b": ">"})
    r.xack("out.b", "join", at(1500))
    add(r, "in", at(2000), "t5b", agent="feed")
    r.xgroup_create("in", "split", id=at(0))  # the group has not reached t5b's root yet
    late = read_trace(r, spec(), "t5")
    assert [(o.agent, o.entry.id, o.state) for o in late.open_ends] == [("join", at(1500), "late")]
    assert late.status == "completed (join timed out)"  # a late partial is not in flight
    assert "late: join's join was already emitted" in tree(late)
    waiting = read_trace(r, spec(), "t5b")
    assert [(o.agent, o.state) for o in waiting.open_ends] == [("split", "waiting")]
    assert waiting.status == "in flight" and "not yet delivered to group split" in tree(waiting)


def test_an_acknowledged_entry_without_output(r: redis.Redis) -> None:
    add(r, "in", at(0), "t6", agent="feed")
    add(r, "lane.a", at(1), "t6", at(0), "split")
    r.xgroup_create("lane.a", "a", id="0")
    r.xreadgroup("a", "a-1", {"lane.a": ">"})
    r.xack("lane.a", "a", at(1))
    (end,) = read_trace(r, spec(), "t6").open_ends
    assert end.state == "consumed" and not end.in_flight


def test_only_the_tasks_partition_is_scanned(r: redis.Redis) -> None:
    mesh = spec(partitions=4)
    trace = "t-routed"
    p = keys.partition_of(trace, 4)
    whole_task(r, trace, key=keys.tag(MESH, p, 4))
    for other in range(4):  # other tasks in every partition
        whole_task(r, f"noise-{other}", base=1, key=keys.tag(MESH, other, 4))
    found = read_trace(r, mesh, trace)
    assert found.status == "completed" and found.scan.partitions == [p]
    assert all(e.key.endswith(keys.tag(MESH, p, 4)) for e in found.entries)
    streams_and_dlqs = len(mesh.streams) + 4  # split, a, b and join read: four dlq streams
    assert found.scan.keys == 1 + streams_and_dlqs  # the root's intake key, then one key each


def test_a_task_routed_by_a_payload_field_is_found_in_its_partition(r: redis.Redis) -> None:
    mesh = spec(partitions=4, partition_key="id")
    p = keys.partition_of("order-7", 4)
    add(r, "in" + keys.tag(MESH, p, 4), at(0), "t7", agent="feed", data={"id": "order-7"})
    found = read_trace(r, mesh, "t7")
    assert found.root is not None and found.scan.partitions == [p]


def test_an_outside_producer_root_is_found_by_its_id(r: redis.Redis) -> None:
    root = add(r, "in", "*", None)  # `data` alone: the trace is the entry id
    add(r, "lane.a", "*", root, root, "split")
    found = read_trace(r, spec(), root)
    assert found.root is not None and found.root.id == root and found.root.agent == ""
    assert found.hops[0].trigger is found.root
    assert "(outside producer)" in tree(found)


def test_a_task_whose_root_was_trimmed_is_shown_from_its_first_hop(r: redis.Redis) -> None:
    whole_task(r, "t13")
    r.xdel("in", at(0))
    with pytest.raises(TraceNotFound):  # without the root there is nothing to start from
        read_trace(r, spec(), "t13")
    found = read_trace(r, spec(), "t13", since=at(0))
    assert found.root is None and found.status == "completed" and len(found.hops) == 4
    text = tree(found, ascii=True)
    assert "not linked to the root entry" in text
    assert "split (attempt 1)  input not found, handler 3 ms" in text
    for agent in ("split", "a", "b", "join"):
        assert text.count(f"{agent} (attempt 1)") == 1, text
    assert text.index("split (attempt") < text.index("a (attempt") < text.index("join (attempt")


def test_the_window_bounds_the_scan(r: redis.Redis) -> None:
    add(r, "in", at(0), "t8", agent="feed")
    add(r, "lane.a", at(10), "t8", at(0), "split")
    add(r, "out.a", at(2 * 3_600_000), "t8", at(10), "a")
    assert len(read_trace(r, spec(), "t8").entries) == 2  # default window: one hour
    assert len(read_trace(r, spec(), "t8", window_ms=3 * 3_600_000).entries) == 3


def test_the_limit_bounds_the_scan_and_says_so(r: redis.Redis) -> None:
    whole_task(r, "t9")
    for n in range(30):
        add(r, "in", at(100 + n), f"n{n}", agent="feed")
    with pytest.raises(TraceNotFound, match="stopped at --max-entries"):
        read_trace(r, spec(), "t9", limit=10, page=4)  # the root is older than the 10 newest
    found = read_trace(r, spec(), "t9", limit=45, page=4)
    assert found.scan.truncated and found.scan.entries == 45
    assert "stopped at --max-entries" in tree(found)


def test_an_unknown_trace(r: redis.Redis) -> None:
    whole_task(r, "t10")
    with pytest.raises(TraceNotFound, match="no entry of mesh 'm' carries trace 'nope'"):
        read_trace(r, spec(), "nope")
    with pytest.raises(TraceNotFound, match=r"between 1700000000000-0 and"):
        read_trace(r, spec(), "nope", since=at(0))
    with pytest.raises(TraceNotFound):  # an entry id that is no root, and in no header
        read_trace(r, spec(), at(20))


def test_json_and_mermaid_views(r: redis.Redis) -> None:
    whole_task(r, "t11")
    found: TaskTrace = read_trace(r, spec(), "t11")
    data = json.loads(as_json(found))
    assert data == json.loads(json.dumps(found.as_dict()))
    assert data["status"] == "completed" and data["agents"] == found.agents
    hops = [(h["agent"], h["input"], h["wait_ms"], h["handler_ms"]) for h in data["hops"]]
    assert hops[0] == ("split", at(0), 7.0, 3.0)
    assert data["entries"][0]["written"] == "2023-11-14T22:13:20.000Z"
    chart = mermaid(found).splitlines()
    assert chart[1] == "sequenceDiagram"
    participants = [line.split()[-1] for line in chart if line.startswith("    participant")]
    assert participants == found.agents
    arrows = [line.strip() for line in chart if "->>" in line]
    assert arrows[0] == f"a_feed->>a_split: in {at(0)} (+0 ms)"
    assert len(arrows) == sum(len(h.inputs) for h in found.hops) == 5
    assert f"Note over a_join: result result {at(40)} at +40 ms" in mermaid(found)


def test_colour_only_when_asked(r: redis.Redis) -> None:
    whole_task(r, "t12")
    found = read_trace(r, spec(), "t12")
    assert "\033[" in tree(found, color=True) and "\033[" not in tree(found)
    tree(found, ascii=True).encode("ascii")


def test_durations_read_well() -> None:
    assert [ms(0), ms(0.25), ms(7), ms(12.5), ms(1250)] == ["0 ms", "0.25 ms", "7 ms",
                                                           "12.5 ms", "1.25 s"]  # fmt: skip


def test_every_option_of_the_command_has_help() -> None:
    sub = next(
        a for a in build_parser("trace")._actions if isinstance(a, argparse._SubParsersAction)
    )
    actions = sub.choices["trace"]._actions
    assert {a.dest for a in actions} >= {
        "file",
        "trace",
        "format",
        "since",
        "window",
        "max_entries",
    }
    assert all(a.help for a in actions), [a.dest for a in actions if not a.help]
