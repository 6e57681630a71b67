"""OpenTelemetry traces: one task through doc_review, exported over OTLP/HTTP to a
receiver in this process, is one trace: the submit's root span, one span per hop, and
the aggregator's merge linked to the four partials it joined."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_kit import cli, wait_for
from meshc.demo import build_review_mesh, review_tasks
from meshc.ops.client import MeshClient
from meshc.runtime.spec import MeshSpec
from meshc.runtime.telemetry import tracing
from meshc.runtime.worker import Worker
from redis.asyncio import Redis
from stream_kit import running, until
from telemetry_kit import Receiver, attributes

LANES = ("grammar", "clarity", "tone", "structure")
AGENTS = ("coordinator", *LANES, "aggregator")


def handler(spec: MeshSpec, agent: str) -> Callable[..., Any] | None:
    """The agent's handler imported from its ``module:function`` (None: a built-in)."""
    name = spec.agents[agent].handler or ""
    if ":" not in name:
        return None
    module, _, function = name.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return found


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """The receiver, and this process's tracer pointed at it (fresh before and after)."""
    got = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", got.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "review-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    tracing.shutdown()
    try:
        yield got
    finally:
        tracing.shutdown()
        got.close()


def test_one_task_is_one_trace_with_a_span_per_hop_and_the_merge_linked_to_its_partials(
    workdir: Path, valkey_only_url: str, receiver: Receiver
) -> None:
    spec = build_review_mesh().load_spec()
    task = review_tasks({"d1": "The team were happy. It is very very good.\n"})[0]

    async def scenario() -> bytes:
        r = Redis.from_url(valkey_only_url)
        workers = [Worker(spec, a, handler(spec, a), redis_url=valkey_only_url) for a in AGENTS]
        assert all(w.telemetry is not None and w.telemetry.spans for w in workers)
        async with running(*workers):
            with MeshClient(spec, valkey_only_url) as client:
                client.submit(task)

            async def summarized() -> bool:
                return bool(await r.xlen("doc.review.summary"))

            await until(summarized, timeout=30)
        summary = (await r.xrange("doc.review.summary"))[0][1]
        await r.aclose()
        return summary[b"traceparent"]

    summary_tp = asyncio.run(scenario())
    tracing.shutdown()  # flushes what the batch processor holds

    spans = receiver.spans
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    assert receiver.services == {"review-test"}
    assert len({s.trace_id for s in spans}) == 1, "one trace per task"
    roots = [s for s in spans if not s.parent_span_id]
    assert [s.name for s in roots] == ["submit doc.review.tasks"]
    hops = {attributes(s)["meshc.agent"]: s for s in spans if s.parent_span_id}
    assert sorted(hops) == sorted(AGENTS) and len(spans) == 1 + len(AGENTS)

    root, coordinator, merge = roots[0], hops["coordinator"], hops["aggregator"]
    assert coordinator.parent_span_id == root.span_id
    lanes = {hops[lane].span_id for lane in LANES}
    assert all(hops[lane].parent_span_id == coordinator.span_id for lane in LANES)
    assert merge.parent_span_id in lanes
    assert {link.span_id for link in merge.links} == lanes
    assert all(link.trace_id == root.trace_id for link in merge.links)

    trace = attributes(root)["meshc.trace"]
    for agent, span in hops.items():
        attrs = attributes(span)
        assert attrs["meshc.mesh"] == "doc_review" and attrs["meshc.trace"] == trace
        assert attrs["meshc.attempt"] == 1 and attrs["meshc.entry_id"]
        expected = "" if agent == "aggregator" else f"doc.review.{agent}"
        if agent == "coordinator":
            expected = "doc.review.tasks"
        assert attrs["meshc.stream"] == expected
    # The result carries the merge span's context: a reader can continue the trace.
    version, trace_id, span_id, flags = summary_tp.decode().split("-")
    assert (version, trace_id, span_id) == ("00", merge.trace_id.hex(), merge.span_id.hex())
    assert int(flags, 16) & 1, "sampled"


def test_tracing_is_off_without_otel_configuration(
    workdir: Path, valkey_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER", "MESHC_METRICS_DIR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    tracing.shutdown()
    spec = build_review_mesh().load_spec()
    assert Worker(spec, "coordinator", None, redis_url=valkey_only_url).telemetry is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    tracing.shutdown()
    assert tracing.active() is None
    tracing.shutdown()


ECHO_MESH = """\
mesh: echoes
version: 1
types:
  Line: {text: str}
streams:
  e.in: {type: Line}
  e.out: {type: Line, terminal: true}
agents:
  feed: {role: producer, writes: [e.in]}
  echo: {role: specialist, reads: [e.in], writes: [e.out], handler: echoes_handlers:echo}
"""


def test_meshc_run_workers_inherit_the_otel_variables_and_flush_when_stopped(
    workdir: Path, valkey_only_url: str, receiver: Receiver
) -> None:
    (workdir / "echoes.yaml").write_text(ECHO_MESH)
    (workdir / "echoes_handlers.py").write_text(
        "def echo(payload, ctx):\n    return {'text': payload.text[::-1]}\n"
    )
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "60000"}  # only the exit flushes
    argv = [sys.executable, "-m", "meshc", "run", "echoes.yaml", "--redis", valkey_only_url]
    run = subprocess.Popen(argv, cwd=workdir, env=env, stderr=subprocess.PIPE, text=True)
    try:
        done = cli("submit", "echoes.yaml", "e.in", "--json", '{"text": "abc"}',
                   "--redis", valkey_only_url)  # fmt: skip
        assert done.code == 0, done.err
        wait_for(lambda: bool(cli("tail", "echoes.yaml", "e.out", "--redis", valkey_only_url)
                              .lines), what="the echo")  # fmt: skip
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    tracing.shutdown()  # the submit's span, from this process
    names = sorted(s.name for s in receiver.spans)
    assert names == ["echo e.in", "submit e.in"], names
    assert len({s.trace_id for s in receiver.spans}) == 1
