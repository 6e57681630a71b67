"""Rolling a running review mesh to its next version while 2,000 tasks flow through
``meshc run``: a fifth lens added, a lens removed, one lens's handler changed. Every
task yields exactly one summary, with the lenses it was sent to; none is lost,
duplicated or dead-lettered."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from e2e_kit import REPO, build, meshc_process, wait_for
from meshc.ops.client import MeshClient

TASKS = 2000
BATCH = 50
PACE = 0.25  # s between batches: a steady stream, across the change
BEFORE, AFTER = 200, 500  # the change starts after the first, the last wait for it
LENSES = ("clarity", "grammar", "structure", "tone")
EXTRA = """\
def style(payload, ctx):
    return {"doc_id": payload.doc_id, "chunk_id": payload.chunk_id, "lens": "style",
            "findings": []}


def tone2(payload, ctx):
    mark = {"start": 0, "end": 1, "severity": "info", "message": "tone v2", "suggestion": ""}
    return {"doc_id": payload.doc_id, "chunk_id": payload.chunk_id, "lens": "tone",
            "findings": [mark]}
"""


def five_lenses(text: str) -> str:
    """The review mesh with a fifth lane, `style`, outside the family."""
    text = text.replace("version: 1", "version: 2")
    text = text.replace(
        'reads: ["@review.output"]', 'reads: ["@review.output", doc.suggestions.style]'
    )
    text = text.replace(
        'writes: ["@review.input"]\n    handler: fanout',
        'writes: ["@review.input", doc.review.style]\n    handler: fanout\n  style:\n'
        "    role: specialist\n    reads: [doc.review.style]\n    writes: [doc.suggestions.style]\n"
        "    handler: extra_lens:style",
    )
    return text.replace("streams:\n", "streams:\n  doc.review.style: {type: ReviewTask}\n"
                        "  doc.suggestions.style: {type: LensResult}\n", 1)  # fmt: skip


def new_tone(text: str) -> str:
    """The review mesh with `tone` out of the family, on another handler, all else equal."""
    text = text.replace(
        "names: [grammar, clarity, tone, structure]", "names: [grammar, clarity, structure]"
    )
    inputs = "[doc.review.grammar, doc.review.clarity, doc.review.tone, doc.review.structure]"
    outputs = "[doc.suggestions.grammar, doc.suggestions.clarity, doc.suggestions.tone, " \
              "doc.suggestions.structure]"  # fmt: skip
    text = text.replace('writes: ["@review.input"]', f"writes: {inputs}")
    text = text.replace('reads: ["@review.output"]', f"reads: {outputs}")
    text = text.replace("agents:\n  ingestion:", "agents:\n  tone:\n    role: specialist\n"
                        "    reads: [doc.review.tone]\n    writes: [doc.suggestions.tone]\n"
                        "    handler: extra_lens:tone2\n  ingestion:")  # fmt: skip
    return text.replace("streams:\n", "streams:\n  doc.review.tone: {type: ReviewTask}\n"
                        "  doc.suggestions.tone: {type: LensResult}\n", 1)  # fmt: skip


def files(workdir: Path) -> dict[str, Path]:
    v1 = (REPO / "meshes" / "doc_review.yaml").read_text(encoding="utf-8")
    (workdir / "extra_lens.py").write_text(EXTRA, encoding="utf-8")
    out = {"v1": v1, "v2": five_lenses(v1), "tone": new_tone(v1)}
    for name, text in out.items():
        (workdir / f"{name}.yaml").write_text(text, encoding="utf-8")
    return {name: workdir / f"{name}.yaml" for name in out}


class Flow:
    """``meshc run FILE`` as a process, and tasks submitted to it in a steady stream."""

    def __init__(self, workdir: Path, server: str, mesh: Path, *extra: str) -> None:
        self.workdir, self.server = workdir, server
        self.log = workdir / "run.log"
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meshc", "run", str(mesh), *extra],
                cwd=workdir, env=env, stderr=err,
            )  # fmt: skip
        wait_for(lambda: "workers ready" in self.text(), 60, "the workers start")
        self.spec = build(mesh)[1]
        self.sent = 0
        self.changed = threading.Event()  # set once the new version runs
        self.thread = threading.Thread(target=self._submit, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop the run if a failed check left it running (its workers die with it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def _submit(self) -> None:
        with MeshClient(self.spec, self.server) as client:
            while self.sent < TASKS:
                if self.sent >= TASKS - AFTER:  # keep some for after the change
                    self.changed.wait(300)
                tasks = [{"doc_id": f"d{self.sent + i}", "chunk_id": 0,
                          "text": "Their is a a problem here. It were checked."}
                         for i in range(BATCH)]  # fmt: skip
                client.submit_many(tasks)
                self.sent += BATCH
                time.sleep(PACE)

    def summaries(self) -> int:
        with redis.Redis.from_url(self.server) as r:
            return int(r.xlen("doc.review.summary"))

    def finish(self) -> list[dict[str, Any]]:
        self.thread.join()
        wait_for(lambda: self.summaries() >= TASKS, 240, f"{TASKS} summaries")
        time.sleep(0.5)  # one more would show by now
        with redis.Redis.from_url(self.server) as r:
            rows = r.xrange("doc.review.summary")
            sent = {orjson.loads(f[b"data"])["doc_id"]: f[b"task.lanes"].decode()
                    for _, f in r.xrange("doc.review.grammar")}  # fmt: skip
            dead = {k.decode(): r.xlen(k) for k in r.keys("doc_review.dlq.*")}
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        assert self.proc.returncode == 0 and "Traceback" not in self.text(), self.text()
        assert not any(dead.values()), dead
        out = [orjson.loads(f[b"data"]) for _, f in rows]
        assert len(out) == TASKS and len({s["doc_id"] for s in out}) == TASKS  # none twice
        for s in out:  # each with the lanes its task was sent to, none missing
            assert sorted(s["lenses"]) == sent[s["doc_id"]].split(","), s
            assert s["missing"] == [], s
        return out

    def rollout(self, old: Path, new: Path) -> str:
        wait_for(lambda: self.sent >= BEFORE, 60, f"{BEFORE} tasks sent")
        done = meshc_process("rollout", str(old), str(new), "--apply", cwd=self.workdir)
        self.changed.set()
        assert done.code == 0, done.err + done.out
        return done.out


@pytest.fixture
def flows() -> Iterator[list[Flow]]:
    """The runs a test starts, stopped at its end whatever happened."""
    started: list[Flow] = []
    yield started
    for flow in started:
        flow.close()


def lanes(summaries: list[dict[str, Any]]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(sorted(s["lenses"])) for s in summaries)


def test_a_fifth_lens_added_mid_flow(server: str, workdir: Path, flows: list[Flow]) -> None:
    f = files(workdir)
    flow = Flow(workdir, server, f["v1"])
    flows.append(flow)
    out = flow.rollout(f["v1"], f["v2"])
    assert "start: style" in out and "restart, downstream first: aggregator, coordinator" in out
    counts = lanes(flow.finish())
    assert set(counts) == {LENSES, tuple(sorted((*LENSES, "style")))}, counts


def test_a_lens_removed_mid_flow(server: str, workdir: Path, flows: list[Flow]) -> None:
    f = files(workdir)
    flow = Flow(workdir, server, f["v2"])
    flows.append(flow)
    out = flow.rollout(f["v2"], f["v1"])
    assert "drain, then stop: style" in out and "drain, then restart: aggregator" in out
    counts = lanes(flow.finish())
    assert set(counts) == {LENSES, tuple(sorted((*LENSES, "style")))}, counts
    with redis.Redis.from_url(server) as r:  # its groups are gone: trimming waits on none
        assert r.xinfo_groups("doc.review.style") == []
        assert r.xinfo_groups("doc.suggestions.style") == []


def test_one_lens_handler_changed_by_editing_the_running_file(
    server: str, workdir: Path, flows: list[Flow]
) -> None:
    f = files(workdir)
    running = workdir / "review.yaml"
    shutil.copy(f["v1"], running)
    flow = Flow(workdir, server, running, "--watch")
    flows.append(flow)
    wait_for(lambda: flow.sent >= BEFORE, 60, f"{BEFORE} tasks sent")
    shutil.copy(f["tone"], workdir / "next.yaml")
    os.replace(workdir / "next.yaml", running)  # `--watch` reloads it, as SIGHUP would
    wait_for(lambda: "reload of doc_review to v1 done" in flow.text(), 120, "the reload")
    flow.changed.set()
    log = flow.text()
    assert re.search(r"restart tone; drain and stop none; drain and restart none", log), log
    assert len(re.findall(r"worker \w+ \(pid \d+\) stopped", log)) == 1  # tone alone
    out = flow.finish()
    assert set(lanes(out)) == {LENSES}
    marked = [any(x["message"] == "tone v2" for x in s["lenses"]["tone"]) for s in out]
    assert any(marked) and not all(marked)
