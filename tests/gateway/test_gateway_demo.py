"""``meshc demo --serve``: the printed curl commands work, as pasted into a shell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from gateway_kit import cli
from meshc.gateway.demo import BEGIN, END
from meshc.runtime.process.server import free_port, stop_server


def test_the_printed_commands_work(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    port = str(free_port())
    demo = subprocess.Popen(
        [sys.executable, "-m", "meshc", "demo", "--serve", "--port", port],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        lines = iter(demo.stdout.readline, "")
        assert next(lines).strip() == BEGIN
        script = [line.strip() for line in iter(lambda: next(lines), f"{END}\n")]
        assert script[0].startswith("TOKEN=") and f"127.0.0.1:{port}" in script[1]
        shell = "\n".join([*script[:2], 'echo "$TRACE"', *script[2:]])
        ran = subprocess.run(["sh", "-ec", shell], capture_output=True, text=True, timeout=120)
    finally:
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=60)
        stop_server(tmp_path)
    assert ran.returncode == 0, ran.stderr
    trace, result, *rest = ran.stdout.splitlines()
    assert len(trace) == 32
    summary = orjson.loads(result)["results"][0]["data"]
    assert summary["doc_id"] == "demo" and summary["lenses"]["grammar"]
    events = [line[7:] for line in rest if line.startswith("event: ")]
    assert events[0] == "hop" and events[-1] == "result" and len(events) == 10
    document = orjson.loads(ran.stdout[ran.stdout.index("\n{\n") :])
    assert document["info"]["title"] == "doc_review (meshc gateway)"
    assert demo.returncode == 0, err
    assert "Traceback" not in err


def test_serve_refuses_the_llm_mesh() -> None:
    done = cli("demo", "--serve", "--model-url", "http://127.0.0.1:9/v1")
    assert done.code == 2 and "drop --model-url" in done.err
