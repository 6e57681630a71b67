"""The parallel-slots mesh answers the sample questions, each from the right passage."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from meshc.codegen.build import build_cached
from meshc.demo import running_workers
from meshc.ops.client import MeshClient

from meshc.examples.qa import sample_questions

# question id -> (slot of the answering passage, words the answer must contain)
EXPECTED = {
    "tides": (1, ("Moon",)),
    "xack": (2, ("XACK", "acknowledges")),
    "coffee": (3, ("two calories",)),
    "everest": (0, ("29 May", "1953")),
}


def test_qa_mesh_answers_the_sample_questions(server: str, workdir: Path) -> None:
    with as_file(files("meshc.examples").joinpath("qa_slots.yaml")) as path:
        built = build_cached(str(path))
    spec = built.load_spec()
    questions = sample_questions()
    assert {q["question_id"] for q in questions} == set(EXPECTED)
    with MeshClient(spec, server) as client, running_workers(spec, built, server):
        submitted = client.submit_many(questions)
        found = client.wait_many([s.trace for s in submitted], timeout=60)
    assert len(found) == len(questions)
    answers = {r.data["question_id"]: r.data for r in found.values()}
    for qid, (slot, words) in EXPECTED.items():
        answer = answers[qid]
        assert answer["slot"] == slot, f"{qid}: {answer}"
        assert all(w in answer["answer"] for w in words), f"{qid}: {answer['answer']!r}"
        assert answer["missing"] == [] and len(answer["scores"]) == 4
