"""The pieces of telemetry that need no running mesh: task start times, trace ids, the
switches of tracing, the command-line options, the Grafana dashboard."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cli_kit import cli
from meshc.cli import main
from meshc.codegen.build import build_cached
from meshc.ops import metrics as ops_metrics
from meshc.runtime.telemetry import metrics, new_trace, task_start, tracing

REPO = Path(__file__).resolve().parents[2]
MESH = """\
mesh: echoes
version: 1
types:
  Line: {text: str}
streams:
  e.in: {type: Line}
  e.out: {type: Line, terminal: true}
agents:
  feed: {role: producer, writes: [e.in]}
  echo: {role: specialist, reads: [e.in], writes: [e.out], handler: fanout}
"""


def test_submit_traces_are_uuid7_and_carry_their_start() -> None:
    before = time.time()
    trace = new_trace()
    after = time.time()
    parsed = uuid.UUID(trace)
    assert (parsed.version, parsed.variant, len(trace)) == (7, uuid.RFC_4122, 32)
    start = task_start(trace.encode())
    assert start is not None and int(before * 1000) / 1000 <= start <= after
    assert len({new_trace() for _ in range(1000)}) == 1000


def test_a_task_start_is_read_from_entry_ids_and_uuid7_only() -> None:
    assert task_start(b"1700000000123-4") == 1700000000.123
    assert task_start(uuid.uuid4().hex.encode()) is None  # random: no time in it
    assert task_start(b"my-own-trace") is None
    assert task_start(b"0192f1a2b3c47def8123456789abcdef") == 0x0192F1A2B3C4 / 1000


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
    ],
)
def test_tracing_is_on_only_when_otel_variables_ask_for_it(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


def test_metrics_are_off_without_the_supervisors_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(metrics.METRICS_DIR_ENV, raising=False)
    assert not metrics.enabled()
    monkeypatch.setenv(metrics.METRICS_DIR_ENV, str(tmp_path / "gone"))
    assert not metrics.enabled()  # a folder that does not exist: off, not an error


def test_the_metrics_port_is_checked(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "echoes.yaml").write_text(MESH)
    with pytest.raises(SystemExit) as done:
        main(["run", "echoes.yaml", "--metrics-port", "70000"])
    assert done.value.code == 2
    assert "'70000' is not a port number (0 to 65535)" in capsys.readouterr().err


def test_a_taken_port_is_one_line_and_exit_1(workdir: Path, valkey_only_url: str) -> None:
    (workdir / "echoes.yaml").write_text(MESH)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = cli("run", "echoes.yaml", "--redis", valkey_only_url, "--metrics-port", port)
        assert done.code == 1 and f"metrics endpoint on 127.0.0.1:{port}" in done.err
        assert "Traceback" not in done.err
        built = build_cached(str(workdir / "echoes.yaml"))
        env = {**built.worker_env(), "PATH": "/usr/bin:/bin"}
        argv = [sys.executable, "-m", built.package, "--redis", valkey_only_url]
        proc = subprocess.run([*argv, "--metrics-port", port], env=env, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1 and "metrics endpoint on" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_prometheus_client_the_message_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, valkey_only_url: str
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    with pytest.raises(ops_metrics.MetricsError, match=re.escape("pip install 'meshc[metrics]'")):
        ops_metrics.MetricsEndpoint(None, valkey_only_url, "127.0.0.1", 0)  # type: ignore[arg-type]


def test_the_dashboard_uses_only_metrics_meshc_exposes_and_shows_each_view() -> None:
    doc = json.loads((REPO / "docs" / "grafana" / "meshc.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"meshc_\w+", e)}
    exposed = {"meshc_consumer_lag", "meshc_consumer_pending", "meshc_calls_in_flight",
               "meshc_server_up", "meshc_worker_stuck_exits_total"}  # fmt: skip
    for family in metrics.families().values():
        kind = family._type  # counter or histogram
        suffixes = ("_total",) if kind == "counter" else ("_bucket", "_sum", "_count")
        exposed |= {family._name + s for s in suffixes}
    assert used <= exposed, used - exposed
    for view in ("meshc_messages_handled_total", "meshc_messages_failed_total",
                 "meshc_dead_letters_total", "meshc_consumer_lag", "meshc_consumer_pending",
                 "meshc_handler_seconds_bucket", "meshc_task_seconds_bucket",
                 "meshc_llm_tokens_total"):  # fmt: skip
        assert view in used, view
    assert all(p["datasource"]["uid"] == "${datasource}" for p in doc["panels"] if "targets" in p)
    text = (REPO / "docs" / "grafana" / "meshc.json").read_text()
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"  # stable bytes
