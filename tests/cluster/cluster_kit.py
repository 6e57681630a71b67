"""Helpers of the cluster tests: a partitioned review mesh, ``meshc run`` as a process,
tasks with known ids, and reading every summary back from every partition."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from meshc.ops.client import read_range
from meshc.runtime import keys
from meshc.runtime.connect import connect

REPO = Path(__file__).resolve().parents[2]
SUMMARY = "doc.review.summary"
INTAKE = "doc.review.tasks"
WORDS = "the quick report was writen very quickly and it is realy good".split()  # noqa: SIM905


def review_mesh(
    folder: Path, partitions: int = 16, join_timeout: str | None = None, **policy: Any
) -> Path:
    """``meshes/doc_review.yaml`` with ``partitions`` and ``partition_key: doc_id``."""
    text = (REPO / "meshes" / "doc_review.yaml").read_text()
    if join_timeout is not None:
        text = text.replace("      timeout: 30s", f"      timeout: {join_timeout}", 1)
    head = f"version: 1\npartitions: {partitions}\npartition_key: doc_id\n"
    text = text.replace("version: 1\n", head, 1)
    for name, value in policy.items():  # a mesh-wide default, replaced or added
        line = re.compile(rf"^  {name}: .*$", re.M)
        if line.search(text):
            text = line.sub(f"  {name}: {value}", text, count=1)
        else:
            text = text.replace("defaults:\n", f"defaults:\n  {name}: {value}\n", 1)
    path = folder / "doc_review.yaml"
    path.write_text(text)
    return path


def task(i: int) -> dict[str, Any]:
    """A small review task whose (doc_id, chunk_id) identifies it."""
    text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8)) + "."
    return {"doc_id": f"doc-{i}", "chunk_id": i % 3, "text": text}


def intake_docs(url: str, partitions: int = 16) -> set[str]:
    """The doc_ids of every task entry still in the intake stream."""
    r = connect(url)
    try:
        found: set[str] = set()
        for p in range(partitions):
            for _, fields in read_range(r, keys.stream_key(INTAKE, "doc_review", p, partitions)):
                found.add(orjson.loads(fields[b"data"])["doc_id"])
        return found
    finally:
        r.close()


def summaries(url: str, partitions: int = 16) -> Counter[str]:
    """How many summaries each doc_id has, over every partition of the terminal stream."""
    r = connect(url)
    try:
        found: Counter[str] = Counter()
        for p in range(partitions):
            key = keys.stream_key(SUMMARY, "doc_review", p, partitions)
            for _, fields in read_range(r, key):
                found[orjson.loads(fields[b"data"])["doc_id"]] += 1
        return found
    finally:
        r.close()


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Run:
    """``meshc run`` in a child process; its stderr (supervisor and worker logs) in ``log``."""

    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@contextlib.contextmanager
def meshc_run(
    mesh: Path, url: str, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Run]:
    """Run every agent of ``mesh`` against ``url`` until the block ends (SIGTERM)."""
    log = workdir / "run.log"
    full = {**os.environ, **(env or {})}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshc", "run", str(mesh), "--redis", url, *args],
            cwd=workdir,
            env=full,
            stderr=err,
        )
    run = Run(proc, log)
    try:
        yield run
    finally:
        run.stop()


def meshc(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One CLI command, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "meshc", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def crossslot_errors(stats: dict[str, dict[str, int]]) -> int:
    return sum(v for node in stats.values() for k, v in node.items() if "CROSSSLOT" in k)


def client(url: str) -> redis.Redis:
    return connect(url)
