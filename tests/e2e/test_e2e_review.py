"""The review mesh at volume: every chunk gets exactly one complete summary."""

from __future__ import annotations

from pathlib import Path

import orjson
from e2e_kit import cli, xlen
from meshc.demo import build_review_mesh, review_mesh_file, review_tasks, running_workers
from meshc.ops.client import MeshClient

from meshc.examples import load_samples

LENSES = {"grammar", "clarity", "tone", "structure"}


def varied_documents(count: int) -> dict[str, str]:
    """``count`` small documents mixed from the samples' paragraphs, each one different."""
    paragraphs = [
        p.strip() for text in load_samples().values() for p in text.split("\n\n") if p.strip()
    ]
    docs = {}
    for i in range(count):
        first, second = paragraphs[i % len(paragraphs)], paragraphs[(7 * i + 3) % len(paragraphs)]
        docs[f"doc-{i:03d}"] = f"{first}\n\n{second}\n\nItem {i} were checked by the the team.\n"
    return docs


def test_two_hundred_documents_give_one_complete_summary_per_chunk(
    server: str, workdir: Path
) -> None:
    built = build_review_mesh()
    spec = built.load_spec()
    tasks = review_tasks(varied_documents(200))
    assert len(tasks) >= 200
    with MeshClient(spec, server) as client, running_workers(spec, built, server):
        submitted = client.submit_many(tasks)
        found = client.wait_many([s.trace for s in submitted], timeout=90)
    assert len(found) == len(tasks)
    assert xlen(server, "doc.review.summary") == len(tasks)  # not one more: no duplicates
    summaries = [r.data for r in found.values()]
    assert {(s["doc_id"], s["chunk_id"]) for s in summaries} == {
        (t["doc_id"], t["chunk_id"]) for t in tasks
    }
    for summary in summaries:
        assert set(summary["lenses"]) == LENSES and summary["missing"] == []
    assert any(summary["lenses"]["grammar"] for summary in summaries)

    status = cli("status", review_mesh_file(), "--format", "json")
    assert status.code == 0, status.err
    report = orjson.loads(status.out)
    for name, stream in report["streams"].items():
        for group, g in stream["groups"].items():
            assert (g["pending"], g["lag"]) == (0, 0), f"{name}/{group}: {g}"
    assert all(a["dead_letters"] == 0 for a in report["agents"].values())
