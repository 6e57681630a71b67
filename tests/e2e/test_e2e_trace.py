"""``meshc trace`` on tasks that real workers ran: the review mesh end to end, a poison
message that dead-letters, and the mistakes a user makes on the command line.

The review mesh runs once for the module (its workers take seconds to start); the
tests read what ``meshc trace`` printed for one of its tasks in each format.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import Outcome, build, cli, wait_for, write_mesh, xlen
from meshc.demo import build_review_mesh, review_mesh_file, running_workers
from meshc.ops.client import MeshClient
from meshc.runtime.process.server import ensure_server, stop_server

RENDER_TESTS = Path(__file__).resolve().parents[1] / "render"
if str(RENDER_TESTS) not in sys.path:  # the Mermaid-in-Chromium harness of the render tests
    sys.path.insert(0, str(RENDER_TESTS))
render_support = importlib.import_module("render_support")

LENSES = {"grammar", "clarity", "tone", "structure"}
TASK = {
    "doc_id": "traced",
    "chunk_id": 0,
    "text": "Their is a problem. It were found by the the team.",
}
POISON = """\
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
    def shout(payload, ctx):
        if payload.text == "poison":
            raise ValueError("poisoned payload")
        return {"id": payload.id, "text": payload.text.upper()}
"""


@dataclass(frozen=True)
class Traced:
    """What ``meshc trace`` printed for one review task, and what the client saw."""

    trace: str
    summary_id: str
    tree: Outcome
    json: Outcome
    mermaid: Outcome
    unknown: Outcome


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    folder = tmp_path_factory.mktemp("trace-review")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("REDIS_URL", raising=False)
        url = ensure_server(folder).url
        try:
            built = build_review_mesh()
            spec = built.load_spec()
            with MeshClient(spec, url) as client, running_workers(spec, built, url):
                submitted = client.submit(TASK)
                result = client.wait(submitted, timeout=90)
            mesh = review_mesh_file()
            yield Traced(
                submitted.trace,
                result.entry["id"],
                cli("trace", mesh, submitted.trace, "--color", "never"),
                cli("trace", mesh, submitted.trace, "--format", "json"),
                cli("trace", mesh, submitted.trace, "--format", "mermaid"),
                cli("trace", mesh, "0123456789abcdef0123456789abcdef"),
            )
        finally:
            stop_server(folder)


def test_the_tree_names_every_agent_in_order_and_ends_with_the_summary(review: Traced) -> None:
    assert review.tree.code == 0, review.tree.err
    lines = review.tree.lines
    assert lines[0].startswith(f"trace {review.trace}  doc_review v1: completed")
    assert "doc.review.tasks" in lines[1] and "written by ingestion" in lines[1]

    def first(word: str) -> int:
        return next(i for i, line in enumerate(lines) if re.search(rf"\b{word} \(attempt", line))

    lenses = [first(lens) for lens in sorted(LENSES)]
    assert first("coordinator") < min(lenses) and max(lenses) < first("aggregator")
    hop = lines[first("aggregator")]
    assert "join of 4 partials" in hop and all(lens in hop for lens in LENSES)
    last_entry = lines[first("aggregator") + 1]
    assert "doc.review.summary" in last_entry and review.summary_id in last_entry
    assert "(terminal: the result)" in last_entry
    ended = lines.index("ended:")
    assert lines[ended + 1].split()[:3] == ["result", "doc.review.summary", review.summary_id]
    assert lines[-1].startswith("scanned ") and "(partition 0)" in lines[-1]


def test_the_json_links_every_hop(review: Traced) -> None:
    assert review.json.code == 0, review.json.err
    data: dict[str, Any] = json.loads(review.json.out)
    assert data["status"] == "completed" and data["trace"] == review.trace
    agents = data["agents"]
    assert agents[:2] == ["ingestion", "coordinator"] and agents[-1] == "aggregator"
    assert set(agents[2:-1]) == LENSES and len(agents) == 7
    hops = {h["agent"]: h for h in data["hops"]}
    ids = {(e["stream"], e["id"]): e for e in data["entries"]}
    fanout = hops["coordinator"]
    assert {o["stream"] for o in fanout["outputs"]} == {f"doc.review.{lens}" for lens in LENSES}
    for lens in LENSES:
        hop = hops[lens]
        assert hop["input_stream"] == f"doc.review.{lens}"
        assert (hop["input_stream"], hop["input"]) in ids
        assert [o["stream"] for o in hop["outputs"]] == [f"doc.suggestions.{lens}"]
        assert hop["total_ms"] >= 0 and hop["attempt"] == 1
    join = hops["aggregator"]
    assert join["join"] and sorted(join["lanes"]) == sorted(LENSES) and join["missing"] == []
    assert {i["stream"] for i in join["inputs"]} == {f"doc.suggestions.{lens}" for lens in LENSES}
    assert join["outputs"] == [{"stream": "doc.review.summary", "id": review.summary_id}]
    assert data["ends"]["results"] == join["outputs"] and data["ends"]["open"] == []
    summary = ids[("doc.review.summary", review.summary_id)]
    assert summary["data"]["doc_id"] == "traced" and set(summary["data"]["lenses"]) == LENSES


def test_the_mermaid_sequence_parses_and_shows_the_agents(review: Traced, tmp_path: Path) -> None:
    assert review.mermaid.code == 0, review.mermaid.err
    chart = review.mermaid.out
    assert chart.splitlines()[1] == "sequenceDiagram"
    assert "a_coordinator->>a_grammar: doc.review.grammar " in chart
    browser = render_support.find_browser()
    results = render_support.mermaid_results(browser, tmp_path, {"trace": chart})
    assert results["trace"]["ok"], results["trace"]
    assert set(results["trace"]["actors"]) == {"ingestion", "coordinator", "aggregator", *LENSES}


def test_an_unknown_trace_exits_1_with_a_clear_message(review: Traced) -> None:
    assert review.unknown.code == 1 and review.unknown.out == ""
    assert "no entry of mesh 'doc_review' carries trace" in review.unknown.err
    assert "Traceback" not in review.unknown.err


def test_a_dead_lettered_task_says_where_and_why(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "poison", POISON, HANDLERS))
    url = ensure_server(workdir).url
    built, spec = build(Path(mesh))
    with MeshClient(spec, url) as client, running_workers(spec, built, url):
        good = client.submit({"id": "a", "text": "fine"})
        bad = client.submit({"id": "b", "text": "poison"})
        wait_for(lambda: xlen(url, "poison.dlq.shout") == 1, what="the dead letter")
        client.wait(good, timeout=30)
    done = cli("trace", mesh, bad.trace)
    assert done.code == 0, done.err
    assert f"trace {bad.trace}  poison v1: dead-lettered" in done.out
    assert "shout (attempt 2)" in done.out and "gave up: ValueError: poisoned payload" in done.out
    assert "dead letter poison.dlq.shout" in done.out and f"of p.in {bad.entry_id}" in done.out
    data = json.loads(cli("trace", mesh, bad.trace, "--format", "json").out)
    (letter,) = data["ends"]["dead_letters"]
    assert letter["error"] == "ValueError: poisoned payload" and letter["deliveries"] == "2"
    assert data["ends"]["results"] == []
    assert "poison v1: completed" in cli("trace", mesh, good.trace).out


def test_usage_errors_exit_2(workdir: Path) -> None:
    mesh = str(write_mesh(workdir, "poison", POISON, HANDLERS))
    ensure_server(workdir)
    for args, message in (
        (["--window", "soon"], "--window 'soon'"),
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--max-entries", "0"], "--max-entries must be at least 1"),
    ):
        done = cli("trace", mesh, "abc", *args)
        assert done.code == 2 and message in done.err and "Traceback" not in done.err
    assert cli("trace", mesh, " ").code == 2
    missing = cli("trace", str(workdir / "nope.yaml"), "abc")
    assert missing.code == 2 and "nope.yaml" in missing.err
