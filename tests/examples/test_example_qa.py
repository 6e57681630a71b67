"""The question-answering mesh: split into slots, score each passage, pick the best."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshc.examples.qa import pick, rank_passage, sample_questions, score, split, stem

SLOTS = tuple(f"qa.slot.{i}" for i in range(4))
EXPECTED = {"tides": 1, "xack": 2, "coffee": 3, "everest": 0}


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def context(writes: tuple[str, ...] = SLOTS) -> Any:
    return SimpleNamespace(spec=SimpleNamespace(writes=writes), logger=Recorder())


def task(passages: list[str]) -> Any:
    return SimpleNamespace(question_id="q1", question="Why?", passages=passages)


def answer(question: dict[str, Any], writes: tuple[str, ...] = SLOTS) -> dict[str, Any]:
    """Run the three handlers the way the mesh does, lane names taken from the streams."""
    slots = split(SimpleNamespace(**question), context(writes))
    parts = {
        stream.rsplit(".", 1)[-1]: SimpleNamespace(**score(SimpleNamespace(**t), None))
        for stream, t in slots.items()
    }
    joined = SimpleNamespace(key={"question_id": question["question_id"]}, parts=parts, missing=())
    return dict(pick(joined, None))


def test_split_gives_one_task_per_output_stream() -> None:
    out = split(task(["p0", "p1", "p2", "p3"]), context())
    assert out == {
        f"qa.slot.{i}": {"question_id": "q1", "question": "Why?", "slot": i, "passage": f"p{i}"}
        for i in range(4)
    }


def test_split_fills_missing_passages_with_empty_text() -> None:
    out = split(task(["only"]), context())
    assert [out[s]["passage"] for s in SLOTS] == ["only", "", "", ""]


def test_split_logs_passages_beyond_the_slots() -> None:
    ctx = context(SLOTS[:2])
    out = split(task(["a", "b", "c"]), ctx)
    assert sorted(out) == ["qa.slot.0", "qa.slot.1"]
    assert ctx.logger.warnings == ["q1: 3 passages, 2 slots"]


def test_split_numbers_slots_by_stream_suffix_not_declaration_order() -> None:
    out = split(task(["a", "b", "c"]), context(("qa.slot.2", "qa.slot.0", "qa.slot.1")))
    assert {s: t["passage"] for s, t in out.items()} == {
        "qa.slot.0": "a",
        "qa.slot.1": "b",
        "qa.slot.2": "c",
    }


def test_split_without_numbered_streams_uses_sorted_order() -> None:
    out = split(task(["a", "b"]), context(("qa.right", "qa.left")))
    assert {s: t["slot"] for s, t in out.items()} == {"qa.left": 0, "qa.right": 1}


@pytest.mark.parametrize("question", sample_questions(), ids=lambda q: q["question_id"])
def test_picks_the_passage_that_answers(question: dict[str, Any]) -> None:
    result = answer(question)
    right = EXPECTED[question["question_id"]]
    assert result["slot"] == right
    assert result["answer"] and result["answer"] in " ".join(question["passages"][right].split())
    assert result["score"] == max(result["scores"].values())
    assert result["missing"] == []
    assert sorted(result["scores"]) == ["0", "1", "2", "3"]


def test_samples_cover_every_slot() -> None:
    assert sorted(EXPECTED.values()) == [0, 1, 2, 3]
    assert {q["question_id"] for q in sample_questions()} == set(EXPECTED)
    assert all(len(q["passages"]) == 4 for q in sample_questions())


def test_score_shape() -> None:
    payload = SimpleNamespace(
        question_id="q", question="What colour is the sky?", slot=2, passage="The sky is blue."
    )
    result = score(payload, None)
    assert result == {
        "question_id": "q",
        "slot": 2,
        "score": result["score"],
        "answer": "The sky is blue.",
    }
    assert result["score"] > 0


@pytest.mark.parametrize("passage", ["", "   ", "Bananas are yellow. Cats sleep a lot."])
def test_nothing_relevant_scores_zero_with_no_answer(passage: str) -> None:
    assert rank_passage("What colour is the sky?", passage) == (0.0, "")


def test_the_answer_is_the_best_sentence() -> None:
    passage = "Cats sleep. The sky is blue on a clear day. Dogs bark."
    assert rank_passage("What colour is the sky on a clear day?", passage)[1] == (
        "The sky is blue on a clear day."
    )


def parts(*scores: tuple[str, int, float]) -> dict[str, Any]:
    return {
        lane: SimpleNamespace(question_id="q", slot=slot, score=value, answer=f"answer {slot}")
        for lane, slot, value in scores
    }


def test_pick_prefers_the_highest_score_then_the_lowest_slot() -> None:
    joined = SimpleNamespace(
        key={"question_id": "q"},
        parts=parts(("2", 2, 0.5), ("1", 1, 0.5), ("0", 0, 0.25)),
        missing=("3",),
    )
    assert pick(joined, None) == {
        "question_id": "q",
        "answer": "answer 1",
        "slot": 1,
        "score": 0.5,
        "scores": {"0": 0.25, "1": 0.5, "2": 0.5},
        "missing": ["3"],
    }


def test_pick_with_every_slot_missing() -> None:
    joined = SimpleNamespace(key={"question_id": "q"}, parts={}, missing=("1", "0"))
    result = pick(joined, None)
    assert (result["slot"], result["answer"], result["score"]) == (-1, "", 0.0)
    assert result["missing"] == ["0", "1"]


def test_qa_is_deterministic() -> None:
    assert [answer(q) for q in sample_questions()] == [answer(q) for q in sample_questions()]


def test_sample_questions_are_fresh_copies() -> None:
    sample_questions()[0]["passages"].clear()
    assert len(sample_questions()[0]["passages"]) == 4


@pytest.mark.parametrize(
    ("words", "stem_"),
    [
        (("land", "lands", "landed", "landing"), "land"),
        (("make", "makes", "making"), "mak"),
        (("run", "running"), "run"),
        (("query", "queries"), "query"),
        (("box", "boxes"), "box"),
        (("acknowledge", "acknowledges", "acknowledged"), "acknowledg"),
    ],
)
def test_light_stemming_joins_inflections(words: tuple[str, ...], stem_: str) -> None:
    assert {stem(w) for w in words} == {stem_}
