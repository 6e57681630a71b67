"""split_document cuts on paragraph boundaries and gives the document back when joined."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshc.examples import load_samples
from meshc.examples.review import chunk_spans, split_document


def check_round_trip(text: str, max_chars: int) -> list[dict[str, object]]:
    tasks = [dict(t) for t in split_document("doc", text, max_chars)]
    assert "".join(str(t["text"]) for t in tasks) == text
    assert [t["chunk_id"] for t in tasks] == list(range(len(tasks)))
    assert all(t["doc_id"] == "doc" and 0 < len(str(t["text"])) <= max_chars for t in tasks)
    return tasks


@pytest.mark.parametrize("max_chars", [200, 500, 800, 2000, 10_000])
def test_samples_round_trip(max_chars: int) -> None:
    for text in load_samples().values():
        check_round_trip(text, max_chars)


def test_short_document_is_one_chunk() -> None:
    text = "# Title\n\nOne paragraph.\n\nAnother.\n"
    assert split_document("d1", text) == [{"doc_id": "d1", "chunk_id": 0, "text": text}]


def test_chunks_start_at_paragraph_starts() -> None:
    text = "\n\n".join(f"Paragraph {i} has a few words in it." for i in range(20)) + "\n"
    for task in check_round_trip(text, 120)[1:]:
        assert str(task["text"]).startswith("Paragraph ")


def test_a_heading_stays_with_the_paragraph_it_introduces() -> None:
    text = "A" * 50 + "\n\n## Next\n\n" + "B" * 50 + "\n"
    chunks = [str(t["text"]) for t in check_round_trip(text, 70)]
    assert chunks[1].startswith("## Next")
    assert not chunks[0].strip().endswith("## Next")


def test_a_long_paragraph_is_cut_at_a_sentence_end() -> None:
    text = " ".join(f"Sentence number {i} ends here." for i in range(30))
    for task in check_round_trip(text, 100)[:-1]:
        assert str(task["text"]).rstrip().endswith(".")


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    check_round_trip("x" * 250, 100)


def test_blank_lines_inside_a_code_fence_are_not_boundaries() -> None:
    fence = "```\nline one\n\nline two\n```\n"
    text = "Intro paragraph.\n\n" + fence + "\nOutro.\n"
    chunks = [str(t["text"]) for t in check_round_trip(text, len(fence) + 2)]
    assert chunks[1] == fence + "\n"


def test_blank_document_gives_no_tasks() -> None:
    assert split_document("d", "") == []
    assert split_document("d", " \n\n ") == []


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk_spans("text", 0)


def test_chunking_is_deterministic() -> None:
    text = load_samples()["incident-report"]
    assert split_document("d", text, 300) == split_document("d", text, 300)


paragraphs = st.lists(
    st.text(alphabet=st.sampled_from("ab .!\n#-`"), min_size=1, max_size=80), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(paragraphs, st.integers(min_value=1, max_value=120))
def test_any_text_round_trips(parts: list[str], max_chars: int) -> None:
    text = "\n\n".join(parts)
    if text.strip():
        check_round_trip(text, max_chars)
    else:
        assert split_document("doc", text, max_chars) == []
