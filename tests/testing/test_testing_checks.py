"""The handler-level checks (no server): each finds its kind of bug, shrinks the input,
names the agent, and passes a correct handler."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meshc.runtime.context import Context, Joined
from meshc.testing import checks
from meshc.testing.loading import LoadedMesh
from meshc.testing.outcome import FAIL, OK, SKIP, RunSettings
from testing_kit import load_mesh

RUN = RunSettings(max_examples=40, seed=7)


@pytest.fixture
def mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedMesh:
    monkeypatch.syspath_prepend(str(tmp_path))
    return load_mesh(tmp_path)


@pytest.fixture
def caller(mesh: LoadedMesh) -> Iterator[checks.Caller]:
    c = checks.Caller(mesh.spec)
    yield c
    c.close()


def run(check: Any, mesh: LoadedMesh, agent: str, handler: Any, caller: checks.Caller) -> Any:
    return check(mesh.spec, mesh.spec.agents[agent], handler, caller, RUN)


def test_correct_handlers_pass_every_check(mesh: LoadedMesh, caller: checks.Caller) -> None:
    assert not mesh.problems
    for agent in ("split", "a", "b", "c", "merge"):
        for check in (checks.contract, checks.determinism):
            outcome = run(check, mesh, agent, mesh.handlers[agent], caller)
            assert outcome.status == OK, (agent, check, outcome.failure)
            assert outcome.examples == RUN.max_examples
    outcome = run(checks.join_order, mesh, "merge", mesh.handlers["merge"], caller)
    assert outcome.status == OK and outcome.note == "6 orders"


def test_contract_finds_and_shrinks_an_input_the_handler_rejects(
    mesh: LoadedMesh, caller: checks.Caller
) -> None:
    def picky(task: Any, ctx: Context) -> dict[str, Any]:
        if " " in task.text:
            raise ValueError("cannot review more than one word")
        return {"id": task.id, "lane": "a", "n": 0}

    outcome = run(checks.contract, mesh, "a", picky, caller)
    assert outcome.status == FAIL
    failure = outcome.failure
    assert failure.agent == "a"
    assert failure.payload == {"id": "", "text": " "}  # the smallest failing payload
    assert "ValueError" in failure.message and "more than one word" in failure.message
    assert failure.label == "t.lane.a, type Task"


def test_contract_finds_outputs_that_do_not_fit(mesh: LoadedMesh, caller: checks.Caller) -> None:
    def sloppy(task: Any, ctx: Context) -> dict[str, Any]:
        return {"id": task.id, "lane": "a", "n": task.text or 0}  # a string where an int goes

    outcome = run(checks.contract, mesh, "a", sloppy, caller)
    assert outcome.status == FAIL
    assert "an output of the handler does not fit" in outcome.failure.message
    assert "InvalidOutput" in outcome.failure.message


def test_contract_runs_async_handlers(mesh: LoadedMesh, caller: checks.Caller) -> None:
    async def lane(task: Any, ctx: Context) -> dict[str, Any]:
        return {"id": task.id, "lane": "a", "n": len(task.text)}

    assert run(checks.contract, mesh, "a", lane, caller).status == OK


def test_determinism_finds_a_counter(mesh: LoadedMesh, caller: checks.Caller) -> None:
    serial = itertools.count()

    def counting(task: Any, ctx: Context) -> dict[str, Any]:
        return {"id": task.id, "lane": "a", "n": next(serial)}

    outcome = run(checks.determinism, mesh, "a", counting, caller)
    assert outcome.status == FAIL and outcome.failure.agent == "a"
    assert outcome.failure.payload == {"id": "", "text": ""}
    first, second = outcome.failure.details
    assert first.startswith("first call:") and second.startswith("second call:")
    assert "deterministic: false" in outcome.failure.help


def test_determinism_accepts_the_same_error_twice(mesh: LoadedMesh, caller: checks.Caller) -> None:
    def always_fails(task: Any, ctx: Context) -> None:
        raise RuntimeError("down")

    assert run(checks.determinism, mesh, "a", always_fails, caller).status == OK


def test_determinism_skips_agents_declared_random(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    monkeypatch.syspath_prepend(str(tmp_path))
    mesh = load_mesh(tmp_path)
    agent = dataclasses.replace(mesh.spec.agents["a"], deterministic=False)
    outcome = checks.determinism(
        mesh.spec, agent, mesh.handlers["a"], checks.Caller(mesh.spec), RUN
    )
    assert outcome.status == SKIP and "end to end" in outcome.note


def test_join_order_finds_a_merge_that_depends_on_arrival(
    mesh: LoadedMesh, caller: checks.Caller
) -> None:
    def first_wins(joined: Joined, ctx: Context) -> dict[str, Any]:
        lanes = list(joined.parts)
        return {"id": joined.key["id"], "lanes": lanes[:1], "total": 0, "missing": []}

    outcome = run(checks.join_order, mesh, "merge", first_wins, caller)
    assert outcome.status == FAIL and outcome.failure.agent == "merge"
    assert outcome.failure.payload["key"] == {"id": ""}
    assert len(outcome.failure.details) == 2
    assert "sorted(joined.parts.items())" in outcome.failure.help


def test_join_order_leaves_a_random_merge_to_the_determinism_check(
    mesh: LoadedMesh, caller: checks.Caller
) -> None:
    serial = itertools.count()

    def noisy(joined: Joined, ctx: Context) -> dict[str, Any]:
        return {"id": joined.key["id"], "lanes": [], "total": next(serial), "missing": []}

    outcome = run(checks.join_order, mesh, "merge", noisy, caller)
    assert outcome.status == SKIP and "determinism" in outcome.note


def test_many_lanes_get_rotations_and_reversals_not_every_permutation() -> None:
    assert len(checks.orders(list("abc"))) == 6
    assert len(checks.orders(list("abcde"))) == 120
    six = checks.orders(list("abcdef"))
    assert len(six) == 12 and ["f", "e", "d", "c", "b", "a"] in six


def test_a_handler_that_fails_sometimes_is_reported_as_flaky(
    mesh: LoadedMesh, caller: checks.Caller
) -> None:
    calls = itertools.count()

    def sometimes(task: Any, ctx: Context) -> dict[str, Any]:
        if next(calls) % 7 == 3:
            raise RuntimeError("bad luck")
        return {"id": task.id, "lane": "a", "n": 1}

    outcome = run(checks.contract, mesh, "a", sometimes, caller)
    assert outcome.status == FAIL
    assert outcome.failure.agent == "a"
    assert "bad luck" in outcome.failure.message
