"""What a reload of ``meshc run`` restarts, and in which order (no server needed)."""

from __future__ import annotations

from dataclasses import replace

from meshc.runtime.process.reload import agent_changed, plan
from meshc.runtime.spec import JoinSpec, MeshSpec, StreamSpec
from worker_kit import Part, Summary, Task, agent, mesh


def fan(lanes: tuple[str, ...], handler: str = "h:f") -> MeshSpec:
    streams = {"t.task": Task, "t.sum": Summary}
    streams |= {f"t.in.{x}": Task for x in lanes} | {f"t.part.{x}": Part for x in lanes}
    join = JoinSpec(on=("doc",), timeout=5, lanes={f"t.part.{x}": x for x in lanes})
    return mesh(streams, [  # type: ignore[arg-type]
        agent("coord", ("t.task",), tuple(f"t.in.{x}" for x in lanes), role="coordinator"),
        *(agent(x, (f"t.in.{x}",), (f"t.part.{x}",), handler=handler) for x in lanes),
        agent("agg", tuple(f"t.part.{x}" for x in lanes), ("t.sum",), role="aggregator",
              join=join),
    ])  # fmt: skip


def test_a_lane_added_starts_it_and_restarts_the_aggregator_before_the_coordinator() -> None:
    p = plan(fan(("a", "b")), fan(("a", "b", "c")))
    assert p.added == ("c",) and p.removed == () and p.after_drain == ()
    assert p.restart == ("agg", "coord")  # downstream first
    assert set(p.new_reads) == {("agg", "t.part.c"), ("c", "t.in.c")} and p.gone_reads == ()


def test_a_lane_removed_drains_before_the_aggregator_lets_go_of_it() -> None:
    p = plan(fan(("a", "b", "c")), fan(("a", "b")))
    assert p.restart == ("coord",) and p.removed == ("c",) and p.after_drain == ("agg",)
    assert set(p.gone_reads) == {("agg", "t.part.c"), ("c", "t.in.c")}


def test_only_a_changed_handler_or_type_restarts_its_agent() -> None:
    old = fan(("a", "b"))
    new = replace(old, agents={**old.agents, "b": replace(old.agents["b"], handler="h:g")})
    assert plan(old, new).restart == ("b",) and plan(old, old).empty
    typed = dict(old.streams)
    typed["t.part.a"] = StreamSpec("t.part.a", Part, fingerprint="other")
    assert {n for n in old.agents if agent_changed(old, replace(old, streams=typed), n)} == {
        "a", "agg"}  # fmt: skip
