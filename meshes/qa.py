"""The question-answering mesh (parallel slots): one passage per slot, the best wins.

``split`` (coordinator) gives each slot the question and one passage, ``score``
(specialist, one replica set per slot) rates its passage with an offline lexical scorer,
and ``pick`` (aggregator) keeps the best answer. Each slot sees only its own passage,
so scores must be comparable without corpus statistics: they measure how much of the
question the best sentence covers, with BM25-style saturation and length
normalisation, rather than BM25's document-frequency weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypedDict

from meshc.runtime.context import Joined

from meshc.examples._qa_samples import SAMPLE_QUESTIONS
from meshc.examples._text import sentence_spans, wordset

K1 = 1.2
B = 0.75
AVERAGE_SENTENCE_TERMS = 12.0
PASSAGE_COVERAGE_WEIGHT = 0.1

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SLOT_SUFFIX = re.compile(r"(\d+)$")
_YEAR_OR_DATE = re.compile(
    r"\b(1\d{3}|20\d{2}|january|february|march|april|may|june|july|august|september"
    r"|october|november|december)\b",
    re.I,
)
_NUMBER_WORDS = wordset("one two three four five six seven eight nine ten twelve twenty hundred")
_STOPWORDS = wordset(
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can could did do does doing down during each few for "
    "from further had has have having he her here hers herself him himself his how i if in "
    "into is it its itself just me more most my myself no nor not of off on once only or "
    "other our ours ourselves out over own same she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up "
    "very was we were what when where which while who whom why will with would you your "
    "yours yourself yourselves also may might must shall s t"
)


class QATask(Protocol):
    """The task: a question and the evidence passages to search."""

    @property
    def question_id(self) -> str: ...

    @property
    def question(self) -> str: ...

    @property
    def passages(self) -> Sequence[str]: ...


class SlotTask(Protocol):
    """What one slot receives: the question and its one passage."""

    @property
    def question_id(self) -> str: ...

    @property
    def question(self) -> str: ...

    @property
    def slot(self) -> int: ...

    @property
    def passage(self) -> str: ...


class _Spec(Protocol):
    @property
    def writes(self) -> Sequence[str]: ...


class SplitContext(Protocol):
    """The part of the handler context ``split`` uses: its declared output streams."""

    @property
    def spec(self) -> _Spec: ...


class SlotTaskDict(TypedDict):
    question_id: str
    question: str
    slot: int
    passage: str


class ScoreDict(TypedDict):
    question_id: str
    slot: int
    score: float
    answer: str


class PickDict(TypedDict):
    question_id: str
    answer: str
    slot: int
    score: float
    scores: dict[str, float]
    missing: list[str]


def split(payload: QATask, ctx: SplitContext) -> dict[str, SlotTaskDict]:
    """One slot task per output stream; slot i gets passage i, or "" when there is none.

    The number of slots is the mesh's (its output streams), not the task's: passages
    beyond it are not scored, which is logged when the context has a logger.
    """
    slots = _slots(ctx.spec.writes)
    if len(payload.passages) > len(slots):
        _warn(ctx, f"{payload.question_id}: {len(payload.passages)} passages, {len(slots)} slots")
    return {
        stream: {
            "question_id": payload.question_id,
            "question": payload.question,
            "slot": slot,
            "passage": payload.passages[slot] if slot < len(payload.passages) else "",
        }
        for slot, stream in slots
    }


def _slots(streams: Sequence[str]) -> list[tuple[int, str]]:
    """(slot, stream) pairs: the number that ends ``qa.slot.3``, else the sorted position."""
    numbers = [_SLOT_SUFFIX.search(stream) for stream in streams]
    if all(numbers) and len({m.group(1) for m in numbers if m}) == len(streams):
        return sorted((int(m.group(1)), s) for m, s in zip(numbers, streams, strict=True) if m)
    return list(enumerate(sorted(streams)))


def _warn(ctx: object, message: str) -> None:
    logger = getattr(ctx, "logger", None)
    if logger is not None:
        logger.warning(message)


def score(payload: SlotTask, ctx: object) -> ScoreDict:
    """Rate one passage against the question; the answer is its best sentence."""
    value, answer = rank_passage(payload.question, payload.passage)
    return {
        "question_id": payload.question_id,
        "slot": payload.slot,
        "score": value,
        "answer": answer,
    }


def pick(joined: Joined, ctx: object) -> PickDict:
    """Keep the highest score (ties go to the lowest slot); name slots that never answered."""
    results = sorted(
        (float(_get(part, "score")), int(_get(part, "slot")), lane, str(_get(part, "answer")))
        for lane, part in joined.parts.items()
    )
    best = min(results, key=lambda r: (-r[0], r[1]), default=(0.0, -1, "", ""))
    return {
        "question_id": str(joined.key.get("question_id") or _first(joined, "question_id")),
        "answer": best[3],
        "slot": best[1],
        "score": best[0],
        "scores": {lane: value for value, _, lane, _ in sorted(results, key=lambda r: r[2])},
        "missing": sorted(joined.missing),
    }


def _first(joined: Joined, field: str) -> Any:
    return next((_get(part, field) for _, part in sorted(joined.parts.items())), "")


def _get(item: Any, field: str) -> Any:
    return item[field] if isinstance(item, Mapping) else getattr(item, field)


def rank_passage(question: str, passage: str) -> tuple[float, str]:
    """(score, best sentence) of a passage; (0.0, "") when nothing matches.

    The passage score is its best sentence's score plus a small share for how much of
    the question the whole passage mentions, so that ties favour the passage that is
    more about the question. Rounded so that the value is stable in JSON.
    """
    weights = _query_weights(question)
    if not weights or not passage.strip():
        return 0.0, ""
    scored = [(_sentence_score(question, passage[s:e], weights), s, e) for s, e in _spans(passage)]
    best, start, end = max(scored, key=lambda t: (t[0], -t[1]), default=(0.0, 0, 0))
    if best <= 0.0:
        return 0.0, ""
    coverage = _coverage(set(terms(passage)), weights)
    answer = " ".join(passage[start:end].split())
    return round(best + PASSAGE_COVERAGE_WEIGHT * coverage, 6), answer


def _spans(passage: str) -> list[tuple[int, int]]:
    return sentence_spans(passage) or [(0, len(passage))]


def terms(text: str) -> list[str]:
    """Content terms: lower case, stopwords removed, lightly stemmed."""
    words = (m.group().lower().replace("’", "'") for m in _TOKEN.finditer(text))
    return [stem(w) for w in words if w not in _STOPWORDS]


def stem(word: str) -> str:
    """A light suffix stripper: "landed", "landing" and "lands" all become "land".

    Heavier stemmers conflate words that a question distinguishes; this one only
    removes inflections, then a final "e", so that "make" and "making" meet.
    """
    for suffix in ("ies", "ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "es" and not word.endswith(("ches", "shes", "xes", "sses")):
                continue
            if suffix == "ed" and word.endswith("eed"):
                break
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
        word = word[:-1]  # "running" → "runn" → "run"
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _query_weights(question: str) -> dict[str, float]:
    """Names and numbers identify evidence better than common words, so weigh them more."""
    weights: dict[str, float] = {}
    for index, m in enumerate(_TOKEN.finditer(question)):
        word = m.group()
        if word.lower() in _STOPWORDS:
            continue
        special = word.isdigit() or (index > 0 and word[:1].isupper())
        term = stem(word.lower())
        weights[term] = max(weights.get(term, 0.0), 1.5 if special else 1.0)
    return weights


def _sentence_score(question: str, sentence: str, weights: Mapping[str, float]) -> float:
    found = terms(sentence)
    length_norm = 1 - B + B * len(found) / AVERAGE_SENTENCE_TERMS
    total = 0.0
    for term, weight in weights.items():
        tf = found.count(term)
        total += weight * tf * (K1 + 1) / (tf + K1 * length_norm) if tf else 0.0
    if total == 0.0:
        return 0.0
    return (
        total / sum(weights.values()) + _bigrams(weights, found) + _answer_type(question, sentence)
    )


def _bigrams(weights: Mapping[str, float], found: list[str]) -> float:
    """A small bonus when question terms appear side by side, as a phrase."""
    query = list(weights)
    pairs = set(zip(query, query[1:], strict=False))
    if not pairs:
        return 0.0
    present = pairs & set(zip(found, found[1:], strict=False))
    return 0.2 * len(present) / len(pairs)


def _answer_type(question: str, sentence: str) -> float:
    """ "When …" wants a date, "How many …" a number: a sentence with one is likelier."""
    asked = question.lower().lstrip()
    if asked.startswith(("when", "what year")):
        return 0.1 if _YEAR_OR_DATE.search(sentence) else 0.0
    if asked.startswith(("how many", "how much", "how long", "how far", "how fast")):
        return 0.1 if any(c.isdigit() for c in sentence) or _has_number_word(sentence) else 0.0
    return 0.0


def _has_number_word(sentence: str) -> bool:
    return any(word in _NUMBER_WORDS for word in sentence.lower().split())


def _coverage(passage_terms: set[str], weights: Mapping[str, float]) -> float:
    return sum(w for t, w in weights.items() if t in passage_terms) / sum(weights.values())


def sample_questions() -> list[dict[str, Any]]:
    """A few QA tasks with four passages each; the answer sits in a different slot each time.

    Fresh copies, so that a caller may change them without changing the samples.
    """
    return [{**task, "passages": list(task["passages"])} for task in SAMPLE_QUESTIONS]
