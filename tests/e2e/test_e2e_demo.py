"""``meshc demo``: a fresh folder, the embedded server, the review mesh, a report."""

from __future__ import annotations

import re
import time
from pathlib import Path

from e2e_kit import cli, meshc_process
from meshc.runtime.process.server import ensure_server, stop_server
from pytest import TempPathFactory

from meshc.examples import load_samples


def _findings(report: str) -> int:
    totals = re.search(r"Total: .*?(\d+) findings", report)
    assert totals, report[-500:]
    return int(totals.group(1))


def test_demo_reviews_every_sample_document(workdir: Path) -> None:
    began = time.monotonic()
    done = meshc_process("demo", cwd=workdir)
    elapsed = time.monotonic() - began
    assert done.code == 0, done.err
    for doc_id in load_samples():
        assert f"\n{doc_id}\n" in f"\n{done.out}", f"{doc_id} missing from the report"
    assert _findings(done.out) > 0
    for lens in ("grammar", "clarity", "tone", "structure"):
        assert re.search(rf"^{lens} \(\d+\)$", done.out, re.M), f"no {lens} findings"
    assert re.search(r"^\s+\d+:\d+\s+error\s", done.out, re.M)  # placed at line:col
    chunks = re.findall(r"reviewed (\d+)/(\d+) chunks", done.err)
    assert chunks and chunks[-1][0] == chunks[-1][1], done.err
    assert "Traceback" not in done.err
    assert elapsed < 30, f"the demo took {elapsed:.1f} s"
    assert (workdir / ".meshc" / "server.json").exists()  # the folder's own server


def test_demo_runs_again_on_the_same_server_with_more_documents(workdir: Path) -> None:
    first = cli("demo", "--docs", "2")
    assert first.code == 0, first.err
    again = cli("demo", "--docs", "7")  # the first two documents are reviewed again
    assert again.code == 0, again.err
    samples = list(load_samples())
    assert f"{samples[0]}-2" in again.out and f"{samples[1]}-2" in again.out
    assert re.search(r"Total: 7 documents", again.out), again.out[-300:]


def test_demo_refuses_a_bad_document_count(workdir: Path) -> None:
    refused = cli("demo", "--docs", "0")
    assert refused.code == 2
    assert "--docs must be at least 1" in refused.err


def test_demo_uses_the_server_it_is_given(workdir: Path, tmp_path_factory: TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    url = ensure_server(elsewhere).url
    try:
        done = cli("demo", "--docs", "1", "--redis", url)
    finally:
        stop_server(elsewhere)
    assert done.code == 0, done.err
    assert "Total: 1 documents" in done.out or "Total: 1 document" in done.out
    assert not (workdir / ".meshc" / "server.json").exists()  # no embedded server here
