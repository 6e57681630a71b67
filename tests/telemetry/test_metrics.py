"""``run_mesh(metrics=...)``: the Prometheus endpoint of a supervised doc_review mesh,
scraped and parsed while real worker processes run on a real server."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from cli_kit import wait_for
from meshc.demo import QUIET, build_review_mesh, review_tasks
from meshc.ops.client import MeshClient
from meshc.runtime.process.launch import run_mesh
from meshc.runtime.process.server import free_port
from meshc.runtime.process.supervisor import SupervisorEvent
from meshc.runtime.spec import MeshSpec
from telemetry_kit import Samples, scrape, value

LANES = ("grammar", "clarity", "tone", "structure")
TEXT = "The team were happy. It is very very good, and we think it works really well.\n"


class Supervised:
    """A doc_review mesh under ``run_mesh`` on a thread, with its events by agent."""

    def __init__(self, spec: MeshSpec, port: int) -> None:
        self.spec, self.port = spec, port
        self.pids: dict[str, int] = {}
        self.events: list[SupervisorEvent] = []

    def seen(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        if event.kind in ("start", "restart") and event.pid is not None:
            self.pids[event.name] = event.pid

    def scrape(self) -> Samples:
        return scrape(self.port)


@contextmanager
def supervised(url: str) -> Iterator[Supervised]:
    built = build_review_mesh()
    spec = built.load_spec()
    mesh = Supervised(spec, free_port())
    stop = threading.Event()
    thread = threading.Thread(
        target=run_mesh,
        args=(spec, built.package, url),
        kwargs={
            "extra_env": {**built.worker_env(), **QUIET},
            "stop": stop,
            "on_event": mesh.seen,
            "metrics": ("127.0.0.1", mesh.port),
        },
        daemon=True,
    )
    thread.start()
    try:
        wait_for(lambda: len(mesh.pids) == 6, what="six workers start")
        yield mesh
    finally:
        stop.set()
        thread.join(60)


def tasks(prefix: str, n: int) -> list[dict[str, object]]:
    return review_tasks({f"{prefix}-{i}": TEXT for i in range(n)})


def lengths(url: str, spec: MeshSpec) -> dict[str, int]:
    with redis.Redis.from_url(url) as r:
        return {s: int(r.xlen(s)) for s in spec.streams}


def handled(samples: Samples, agent: str, stream: str) -> float:
    return value(
        samples, "meshc_messages_handled_total", mesh="doc_review", agent=agent, stream=stream
    )


def counters_match_streams(samples: Samples, held: dict[str, int]) -> bool:
    """Every per-agent counter equals what the streams it reads and writes hold."""
    pairs = [(handled(samples, "coordinator", "doc.review.tasks"), held["doc.review.tasks"])]
    for lane in LANES:
        pairs.append((handled(samples, lane, f"doc.review.{lane}"), held[f"doc.review.{lane}"]))
        pairs.append((handled(samples, lane, f"doc.review.{lane}"),
                      held[f"doc.suggestions.{lane}"]))  # fmt: skip
        pairs.append((handled(samples, "aggregator", f"doc.suggestions.{lane}"),
                      held[f"doc.suggestions.{lane}"]))  # fmt: skip
    emitted = value(samples, "meshc_joins_emitted_total", mesh="doc_review", agent="aggregator")
    pairs.append((emitted, held["doc.review.summary"]))
    return all(a == b for a, b in pairs)


def group(samples: Samples, name: str, agent: str, stream: str) -> float:
    return value(samples, name, mesh="doc_review", agent=agent, stream=stream)


def test_counters_equal_what_the_streams_hold_and_lag_moves_when_a_consumer_stops(
    workdir: Path, valkey_only_url: str
) -> None:
    url = valkey_only_url
    with supervised(url) as mesh, MeshClient(mesh.spec, url) as client:
        first = tasks("a", 4)
        client.wait_many([s.trace for s in client.submit_many(first)], timeout=60)
        held = lengths(url, mesh.spec)
        assert held["doc.review.summary"] == len(first)
        wait_for(lambda: counters_match_streams(mesh.scrape(), held), what="counters")

        s = mesh.scrape()
        labels = {"mesh": "doc_review", "agent": "coordinator", "stream": "doc.review.tasks"}
        assert value(s, "meshc_handler_seconds_count", **labels) == len(first)
        summary = {"mesh": "doc_review", "agent": "aggregator", "stream": "doc.review.summary"}
        assert value(s, "meshc_task_seconds_count", **summary) == len(first)
        assert value(s, "meshc_task_seconds_sum", **summary) > 0
        assert value(s, "meshc_server_up") == 1
        for lane in LANES:
            assert group(s, "meshc_consumer_lag", lane, f"doc.review.{lane}") == 0
            assert group(s, "meshc_consumer_pending", lane, f"doc.review.{lane}") == 0
        assert not any(name == "meshc_messages_failed_total" and v for (name, _), v in s.items())

        # The coordinator stops (SIGSTOP): what is submitted now waits in its group.
        os.kill(mesh.pids["coordinator"], signal.SIGSTOP)
        try:
            second = tasks("b", 3)
            traces = [x.trace for x in client.submit_many(second)]

            def waiting() -> float:
                s = mesh.scrape()
                return group(s, "meshc_consumer_lag", "coordinator", "doc.review.tasks") + group(
                    s, "meshc_consumer_pending", "coordinator", "doc.review.tasks"
                )

            wait_for(lambda: waiting() == len(second), what="the stopped consumer's backlog")
        finally:
            os.kill(mesh.pids["coordinator"], signal.SIGCONT)
        client.wait_many(traces, timeout=60)
        wait_for(lambda: waiting() == 0, what="the backlog drains")

        # A killed worker's counts stay in the totals (its files are marked dead).
        killed = mesh.pids["grammar"]
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: mesh.pids["grammar"] != killed, what="grammar restarts")
        third = tasks("c", 2)
        client.wait_many([x.trace for x in client.submit_many(third)], timeout=60)
        held = lengths(url, mesh.spec)
        assert held["doc.review.summary"] == len(first) + len(second) + len(third)
        wait_for(lambda: counters_match_streams(mesh.scrape(), held), what="counters after kill")
        in_flight = value(mesh.scrape(), "meshc_calls_in_flight", mesh="doc_review",
                          agent="grammar")  # fmt: skip
        assert in_flight == 0


def test_the_metrics_folder_is_private_and_removed_when_the_mesh_stops(
    workdir: Path, valkey_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshc.ops import metrics

    made: list[str] = []
    real = metrics.tempfile.mkdtemp

    def spy(**kwargs: str) -> str:
        made.append(real(**kwargs))
        return made[-1]

    monkeypatch.setattr(metrics.tempfile, "mkdtemp", spy)
    with supervised(valkey_only_url) as mesh:
        assert value(mesh.scrape(), "meshc_server_up") == 1
        assert oct(os.stat(made[0]).st_mode & 0o777) == "0o700"
    assert not os.path.exists(made[0])


FLAKY = """\
mesh: flaky
version: 1
types:
  Item: {n: int}
streams:
  f.in: {type: Item}
  f.out: {type: Item, terminal: true}
agents:
  feed: {role: producer, writes: [f.in]}
  flaky:
    role: specialist
    reads: [f.in]
    writes: [f.out]
    handler: flaky_handlers:flaky
    visibility_timeout: 1s
    max_deliveries: 3
"""
FLAKY_HANDLERS = """\
def flaky(payload, ctx):
    if payload.n < 0:
        raise ValueError("poison")
    if ctx.attempt == 1:
        raise RuntimeError("the first try fails")
    return {"n": payload.n}
"""


def test_failures_retries_and_dead_letters_are_counted(workdir: Path, valkey_only_url: str) -> None:
    from meshc.codegen.build import build_cached

    (workdir / "flaky.yaml").write_text(FLAKY)
    (workdir / "flaky_handlers.py").write_text(FLAKY_HANDLERS)
    built = build_cached(str(workdir / "flaky.yaml"))
    spec, port, stop = built.load_spec(), free_port(), threading.Event()
    env = built.worker_env()
    thread = threading.Thread(
        target=run_mesh,
        args=(spec, built.package, valkey_only_url),
        kwargs={"extra_env": {**env, **QUIET}, "stop": stop, "metrics": ("127.0.0.1", port)},
        daemon=True,
    )
    thread.start()
    labels = {"mesh": "flaky", "agent": "flaky", "stream": "f.in"}
    try:
        with MeshClient(spec, valkey_only_url) as client:
            client.submit_many([{"n": 1}, {"n": 2}, {"n": 3}, {"n": -1}])
        with redis.Redis.from_url(valkey_only_url) as r:
            wait_for(lambda: r.xlen("f.out") == 3 and r.xlen("flaky.dlq.flaky") == 1,
                     timeout=60, what="three results and one dead letter")  # fmt: skip

        def counts() -> tuple[float, ...]:
            s = scrape(port)
            return tuple(
                value(s, f"meshc_{name}_total", **labels)
                for name in (
                    "messages_handled",
                    "messages_failed",
                    "messages_retried",
                    "dead_letters",
                )  # fmt: skip
            ) + (value(s, "meshc_handler_seconds_count", **labels),)

        # 3 handled; failed: each good one once, the poison on all 3 deliveries;
        # retried: the good ones' second calls and the poison's 2nd and 3rd.
        wait_for(lambda: counts() == (3, 6, 5, 1, 9), what="the counters")
    finally:
        stop.set()
        thread.join(60)
