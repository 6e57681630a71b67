"""End to end on a real server: the run absorbs duplicate deliveries, and it names the
agent that drops, dead-letters or duplicates a task, or breaks its trace."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from meshc.testing.e2e import EndToEnd
from meshc.testing.harness import Hop, RunningMesh
from meshc.testing.loading import load
from meshc.testing.meshgen import meshes
from meshc.testing.outcome import FAIL, OK, RunSettings
from meshc.testing.runner import Report, ServerInUse, run_tests
from testing_kit import write_mesh

RUN = RunSettings(max_examples=10, seed=3, e2e_examples=3)


@pytest.fixture(autouse=True)
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))


def outcome(report: Report, check: str, subject: str) -> Any:
    return next(o for o in report.outcomes if (o.check, o.subject) == (check, subject))


def test_a_correct_mesh_passes_with_duplicates_absorbed(tmp_path: Path) -> None:
    extra = """
    defaults:
      max_deliveries: 4
    """
    path = write_mesh(tmp_path, extra=extra)
    report = run_tests(str(path), RUN, folder=tmp_path)
    e2e = outcome(report, "end to end", "t.tasks")
    assert e2e.status == OK, e2e.failure and e2e.failure.message
    assert e2e.examples == RUN.e2e_examples
    assert "redeliveries" in e2e.note and not e2e.note.startswith("0 tasks")
    assert not report.failed


def test_a_task_that_a_lane_drops_is_reported_with_the_lane(tmp_path: Path) -> None:
    handlers = """
    def lane(task, ctx):
        if ctx.stream.endswith(".b") and task.text:
            return None  # silently drops the task: the join never completes
        return {"id": task.id, "lane": "x", "n": 0}

    def merge(joined, ctx):
        return {"id": joined.key["id"], "lanes": sorted(joined.parts), "total": 0,
                "missing": list(joined.missing)}
    """
    path = write_mesh(tmp_path, handlers)
    report = run_tests(str(path), RunSettings(10, 3, 3, shrink=False), folder=tmp_path)
    e2e = outcome(report, "end to end", "t.tasks")
    assert e2e.status == FAIL
    assert e2e.failure.agent == "b"
    assert "wrote nothing" in e2e.failure.message
    assert e2e.failure.payload["text"] != ""


def test_a_dead_lettered_task_names_the_agent_and_its_error(tmp_path: Path) -> None:
    handlers = """
    def lane(task, ctx):
        if ctx.stream.endswith(".c") and "a" in task.id + task.text:
            raise KeyError("no such reviewer")
        return {"id": task.id, "lane": "x", "n": 0}

    def merge(joined, ctx):
        return {"id": joined.key["id"], "lanes": sorted(joined.parts), "total": 0,
                "missing": list(joined.missing)}
    """
    path = write_mesh(tmp_path, handlers)
    report = run_tests(str(path), RunSettings(10, 5, 4, shrink=False), folder=tmp_path)
    assert outcome(report, "contract", "c").status == FAIL
    e2e = outcome(report, "end to end", "t.tasks")
    assert e2e.status == FAIL and e2e.failure.agent == "c"
    assert "dead-lettered" in e2e.failure.message and "no such reviewer" in e2e.failure.message


LINEAR = """
mesh: {name}
types:
  Text:
    id: str
    text: str
streams:
  l.in:
    type: Text
  l.out:
    type: Text
    terminal: true
agents:
  src:
    role: producer
    writes: [l.in]
  echo:
    role: specialist
    reads: [l.in]
    writes: [l.out]
    handler: {module}:echo
    deterministic: false
"""


def linear(folder: Path, body: str) -> Path:
    token = uuid.uuid4().hex[:10]
    (folder / f"h_{token}.py").write_text(textwrap.dedent(body))
    path = folder / f"m_{token}.yaml"
    path.write_text(LINEAR.format(name=f"m_{token}", module=f"h_{token}"))
    return path


def test_two_results_for_one_task_name_the_agent_that_doubled_it(tmp_path: Path) -> None:
    path = linear(
        tmp_path,
        """
        def echo(text, ctx):
            out = {"id": text.id, "text": text.text}
            return [out, out] if text.text else out
        """,
    )
    report = run_tests(str(path), RUN, folder=tmp_path)
    e2e = outcome(report, "end to end", "l.in")
    assert e2e.status == FAIL and e2e.failure.agent == "echo"
    assert "2 results at l.out" in e2e.failure.message
    assert e2e.failure.payload == {"id": "", "text": "0"}  # shrunk


def test_a_random_agent_is_checked_for_exactly_once_delivery(tmp_path: Path) -> None:
    path = linear(
        tmp_path,
        """
        import random

        def echo(text, ctx):
            return {"id": text.id, "text": str(random.random())}
        """,
    )
    report = run_tests(str(path), RUN, folder=tmp_path)
    assert outcome(report, "determinism", "echo").status == "skip"
    once = outcome(report, "exactly once", "echo")
    assert once.status == OK and once.examples >= 1, once.note
    assert not report.failed


class _Spec:
    """Just enough of a RunningMesh for the trace checks on hand-made entries."""

    def __init__(self, path: Path) -> None:
        self.spec = load(str(path), path.parent).spec


def test_trace_and_exactly_once_checks_on_hand_made_entries(tmp_path: Path) -> None:
    path = linear(tmp_path, "def echo(text, ctx):\n    return text\n")
    e2e = EndToEnd(cast(RunningMesh, _Spec(path)), "l.in", 1.0)
    from meshc.ops.client import Submitted

    sub = Submitted("T", "1-0", "l.in", "l.in")
    root = Hop("l.in", 0, "1-0", "T", "", "src", 1, {})
    good = Hop("l.out", 0, "2-0", "T", "1-0", "echo", 1, {})
    assert [h.id for h in e2e._walk(sub, {}, [root, good], good)] == ["1-0", "2-0"]

    orphan = Hop("l.out", 0, "3-0", "T", "9-9", "echo", 1, {})
    with pytest.raises(Exception, match="none of `echo`'s input streams") as err:
        e2e._walk(sub, {}, [root, orphan], orphan)
    assert getattr(err.value, "agent", None) == "echo"

    forged = Hop("l.out", 0, "4-0", "T", "1-0", "src", 1, {})
    with pytest.raises(Exception, match="does not declare l.out"):
        e2e._walk(sub, {}, [root, forged], forged)

    again = Hop("l.out", 0, "5-0", "T", "1-0", "echo", 2, {})
    with pytest.raises(Exception, match="outputs of every delivery") as err:
        e2e._exactly_once({}, [root, good, again])
    assert getattr(err.value, "agent", None) == "echo"


def test_redis_option_uses_a_given_server_and_cleans_up(tmp_path: Path, meshc_server: str) -> None:
    client = redis.Redis.from_url(meshc_server)
    client.flushall()
    path = linear(tmp_path, "def echo(text, ctx):\n    return text\n")
    report = run_tests(str(path), RUN, folder=tmp_path, redis_url=meshc_server)
    assert not report.failed
    assert client.dbsize() == 0
    client.xadd("l.in", {"data": "{}"})
    with pytest.raises(ServerInUse, match="already holds keys"):
        run_tests(str(path), RUN, folder=tmp_path, redis_url=meshc_server)
    client.flushall()
    client.close()


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(meshes(as_yaml=True, max_flows=1, max_stages=2))
def test_every_drawn_mesh_passes_meshc_test(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    folder = tmp_path_factory.mktemp("drawn")
    path = folder / "drawn.yaml"
    path.write_text(text)
    report = run_tests(
        str(path), RunSettings(max_examples=5, seed=1, e2e_examples=1), folder=folder
    )
    assert not report.failed, [
        (o.check, o.subject, o.failure.message) for o in report.failed if o.failure
    ]
