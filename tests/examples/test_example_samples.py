"""The sample documents: realistic, each with the problems it was written to show.

Also the whole review path run by hand (split → four lenses → summarize → report),
which is what ``meshc demo`` does through Redis.
"""

from __future__ import annotations

import json
import timeit
from types import SimpleNamespace
from typing import Any

import pytest

from meshc.examples import load_samples
from meshc.examples.review import format_report, split_document
from meshc.examples.review.clarity import clarity
from meshc.examples.review.grammar import grammar
from meshc.examples.review.structure import structure
from meshc.examples.review.summary import summarize
from meshc.examples.review.tone import tone

LENSES = {"grammar": grammar, "clarity": clarity, "tone": tone, "structure": structure}
SAMPLES = load_samples()
CLEAN = "release-notes"


def review(text: str, doc_id: str = "doc") -> list[dict[str, Any]]:
    summaries = []
    for task in split_document(doc_id, text):
        payload = SimpleNamespace(**task)
        parts = {name: lens(payload, None) for name, lens in LENSES.items()}
        key = {"doc_id": doc_id, "chunk_id": task["chunk_id"]}
        joined = SimpleNamespace(key=key, parts=parts, missing=())
        summaries.append(dict(summarize(joined, None)))
    return summaries


def flagged(doc_id: str) -> dict[str, list[str]]:
    """Flagged snippets per lens over the whole document."""
    text = SAMPLES[doc_id]
    found: dict[str, list[str]] = {name: [] for name in LENSES}
    for task in split_document(doc_id, text):
        for name, lens in LENSES.items():
            result = lens(SimpleNamespace(**task), None)
            found[name] += [task["text"][f["start"] : f["end"]] for f in result["findings"]]
    return found


def test_there_are_four_to_six_samples_of_150_to_600_words() -> None:
    assert 4 <= len(SAMPLES) <= 6
    assert CLEAN in SAMPLES
    for text in SAMPLES.values():
        assert 150 <= len(text.split()) <= 600


def test_the_clean_sample_has_no_findings_at_all() -> None:
    assert flagged(CLEAN) == {name: [] for name in LENSES}


@pytest.mark.parametrize("doc_id", sorted(set(SAMPLES) - {CLEAN}))
def test_every_other_sample_has_findings_in_at_least_two_lenses(doc_id: str) -> None:
    found = flagged(doc_id)
    assert sum(1 for snippets in found.values() if snippets) >= 2


@pytest.mark.parametrize(
    ("doc_id", "lens", "snippet"),
    [
        ("product-announcement", "grammar", "recieve"),
        ("product-announcement", "grammar", "could of"),
        ("product-announcement", "tone", "THRILLED"),
        ("product-announcement", "clarity", "Many experts"),
        ("team-memo", "grammar", "they was"),
        ("team-memo", "tone", "Per my last email"),
        ("team-memo", "tone", "I think"),
        ("readme-excerpt", "structure", "### Installation"),
        ("readme-excerpt", "structure", "## Configuration"),
        ("readme-excerpt", "grammar", "a hour"),
        ("incident-report", "grammar", "occured"),
        ("incident-report", "clarity", "was deployed"),
    ],
)
def test_planted_problems_are_found(doc_id: str, lens: str, snippet: str) -> None:
    assert snippet in flagged(doc_id)[lens]


def test_code_in_the_readme_is_not_reviewed() -> None:
    assert not any("pip" in s or "6379" in s for s in sum(flagged("readme-excerpt").values(), []))


@pytest.mark.parametrize("doc_id", sorted(SAMPLES))
def test_every_finding_is_well_formed(doc_id: str) -> None:
    for task in split_document(doc_id, SAMPLES[doc_id]):
        for name, lens in LENSES.items():
            result = lens(SimpleNamespace(**task), None)
            assert (result["doc_id"], result["chunk_id"], result["lens"]) == (
                doc_id,
                task["chunk_id"],
                name,
            )
            for f in result["findings"]:
                assert 0 <= f["start"] < f["end"] <= len(task["text"])
                assert f["severity"] in ("info", "warning", "error")
                assert f["message"].strip() and f["suggestion"].strip()
            json.dumps(result)


def test_review_is_deterministic() -> None:
    first = {doc_id: review(text, doc_id) for doc_id, text in SAMPLES.items()}
    second = {doc_id: review(text, doc_id) for doc_id, text in SAMPLES.items()}
    assert json.dumps(first, sort_keys=False) == json.dumps(second, sort_keys=False)


def test_report_over_all_samples() -> None:
    summaries = [s for doc_id, text in SAMPLES.items() for s in review(text, doc_id)]
    report = format_report(summaries, SAMPLES)
    for doc_id in SAMPLES:
        assert f"\n{doc_id}\n{'=' * len(doc_id)}\n" in f"\n{report}"
    assert f"{CLEAN}\n{'=' * len(CLEAN)}\n1 chunk reviewed · no findings" in report
    assert report.rstrip().splitlines()[-2].startswith(f"Total: {len(SAMPLES)} documents")
    assert report == format_report(list(reversed(summaries)), SAMPLES)


def test_each_lens_handles_a_2kb_chunk_in_well_under_5_ms() -> None:
    text = "\n\n".join(SAMPLES.values())
    (task, *_) = split_document("big", text, 2000)
    assert len(task["text"]) > 1500
    payload = SimpleNamespace(**task)
    for lens in LENSES.values():
        best = min(timeit.repeat(lambda lens=lens: lens(payload, None), number=3, repeat=5)) / 3
        assert best < 0.005, f"{lens.__name__} took {best * 1000:.2f} ms"
