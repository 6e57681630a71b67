"""The grammar lens: mistakes with one right answer, each reported with its fix.

It only reports what it can correct with confidence (a repeated word, a known
misspelling, "they was"), because a grammar checker that cries wolf gets switched off.
Style questions belong to the clarity and tone lenses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from meshc.examples._text import heading_level, mask_code, wordset
from meshc.examples.review._common import (
    Finding,
    LensResult,
    ReviewTask,
    finding,
    lens_result,
    match_case,
    normal,
    phrase_pattern,
    starts_sentence,
    table_findings,
)
from meshc.examples.review._spelling import MISSPELLINGS

_REPEATED = re.compile(r"(?<![\w'’-])([^\W\d_]+)(?:[ \t]+|[ \t]*\n[ \t]*)(\1)(?![\w'’-])", re.I)
_REPEAT_OK = frozenset({"had", "that", "bye", "ha", "no"})
_WORD = re.compile(r"(?<![\w./])[^\W\d_]+(?![\w/]|\.\w)")
_ARTICLE = re.compile(r"(?<![\w'’-])(an?)([ \t]+|[ \t]*\n[ \t]*)([^\W_][\w'’-]*)", re.I)
_MODAL_OF = re.compile(
    r"(?<![\w'’-])((?:could|should|would|must|might)(?:n['’]t)?)\s+of(?![\w'’-])(?!\s+course)",
    re.I,
)
_THEN = re.compile(
    r"(?<![\w'’-])(more|less|better|worse|rather|other|fewer|greater|larger|smaller"
    r"|higher|lower|faster|slower)\s+(then)(?![\w'’-])",
    re.I,
)
_ITS = re.compile(r"(?<![\w'’-])(its)\s+(?:a|an|the|not|been|going|got)(?![\w'’-])", re.I)
# "Their is a problem": a possessive where "there" introduces the sentence.
_THEIR = re.compile(r"(?<![\w'’-])(their)\s+(?:is|are|was|were)(?![\w'’-])", re.I)
_PLURAL_IS = re.compile(
    r"(?<![\w'’-])(?:a lot of|lots of|many of the|most of the)\s+([^\W\d_]+s)\s+(is|was|has)\b",
    re.I,
)
_NUMBER_OF = re.compile(r"(?<![\w'’-])the number of\s+[^\W\d_]+\s+(are|were|have)\b", re.I)
_NOT_PLURAL = frozenset({"news", "series", "species", "means", "physics", "mathematics"})
_VERB_SWAP = {"is": "are", "was": "were", "has": "have", "are": "is", "were": "was", "have": "has"}

# Verb forms by subject: "s" (he, she, it), "1" (I) and "p" (we, you, they).
_SUBJECTS = {"he": "s", "she": "s", "it": "s", "i": "1", "we": "p", "you": "p", "they": "p"}
_VERB_FIXES = {
    "don't": {"s": "doesn't"},
    "doesn't": {"p": "don't", "1": "don't"},
    "was": {"p": "were"},
    "were": {"s": "was", "1": "was"},
    "is": {"p": "are", "1": "am"},
    "are": {"s": "is", "1": "am"},
    "has": {"p": "have", "1": "have"},
    "have": {"s": "has"},
}
_QUANTITIES = ("many", "several", "multiple", "numerous", "various", "a few", "two", "three")
_AGREEMENT = {
    f"{subject} {verb}": f"{subject} {fixes[kind]}"
    for subject, kind in _SUBJECTS.items()
    for verb, fixes in _VERB_FIXES.items()
    if kind in fixes
}
_THERE = (("there is", "there are"), ("there's", "there are"), ("there was", "there were"))
_AGREEMENT |= {f"{wrong} {q}": f"{right} {q}" for q in _QUANTITIES for wrong, right in _THERE}
_AGREEMENT |= {f"{who} are": f"{who} is" for who in ("everyone", "everybody", "nobody", "someone")}
_AGREEMENT_RE = phrase_pattern(_AGREEMENT)
# "if it were", "I wish I were": the subjunctive; "does he have", "let it have": infinitives.
_EXCUSED_BY = {
    "were": frozenset({"if", "though", "wish", "wished", "that", "as"}),
    "have": wordset(
        "does did do will would can could should may might must shall to let make makes made "
        "help helps that doesn't didn't won't wouldn't can't couldn't"
    ),
}
_NUMBERED = wordset("part phase chapter section volume stage type level war act book appendix step")

# Vowel letters that sound like consonants ("a university") and the reverse ("an hour").
_YOU_SOUND = ("uni", "unan", "use", "usa", "usu", "uti", "uto", "ura", "ure", "uri", "ubi", "eu")
_UN_PREFIX = ("unin", "unim", "unid")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
_LETTERS_WITH_AN = "FHLMNRSX"  # consonants whose names start with a vowel: "eff", "aitch"…


def grammar(payload: ReviewTask, ctx: object) -> LensResult:
    """Review one chunk for grammar: repeated words, agreement, spelling, articles."""
    text = mask_code(payload.text)
    findings = [
        *_repeated_words(text),
        *table_findings(_AGREEMENT_RE, text, _agreement),
        *_plural_agreement(text),
        *_misspellings(text),
        *table_findings(_ARTICLE, text, _article),
        *table_findings(_MODAL_OF, text, _modal_of),
        *table_findings(_THEN, text, _then),
        *table_findings(_ITS, text, _its),
        *table_findings(_THEIR, text, _their),
    ]
    return lens_result(payload, "grammar", findings)


def _repeated_words(text: str) -> Iterator[Finding]:
    for m in _REPEATED.finditer(text):
        if m.group(1).lower() not in _REPEAT_OK and not _ends_heading(text, m):
            message = f'Repeated word: "{m.group(1)}" appears twice in a row.'
            yield finding(m.span(), "error", message, m.group(1))


def _ends_heading(text: str, m: re.Match[str]) -> bool:
    """ "## Usage" then "Usage is simple." repeats a word across a heading, not a sentence."""
    if "\n" not in m.group():
        return False
    line_start = text.rfind("\n", 0, m.start()) + 1
    return bool(heading_level(text[line_start : m.start()]))


def _agreement(m: re.Match[str]) -> Finding | None:
    written = normal(m.group())
    words = written.split()
    previous = _previous_word(m.string, m.start())
    if previous in _EXCUSED_BY.get(words[-1], frozenset()):
        return None
    if words[0] == "i" and previous in _NUMBERED:
        return None  # "Part I is", "Phase I was": a Roman numeral
    fixed = match_case(_AGREEMENT[written], m.group())
    message = f'Subject and verb disagree: "{m.group()}" should be "{fixed}".'
    return finding(m.span(), "error", message, fixed)


def _previous_word(text: str, start: int) -> str:
    before = text[max(0, start - 30) : start].split()
    return normal(before[-1].strip(",;:(\"'“")) if before else ""


def _plural_agreement(text: str) -> Iterator[Finding]:
    """ "a lot of bugs is" and "the number of users are": the verb follows the real subject."""
    for m in _PLURAL_IS.finditer(text):
        noun = m.group(1).lower()
        if noun in _NOT_PLURAL or noun.endswith(("ss", "us", "is")):
            continue
        yield _verb_fix(m, 2, f'"{m.group(1)}" is plural, so the verb is too.')
    for m in _NUMBER_OF.finditer(text):
        yield _verb_fix(m, 1, '"The number of …" is singular: one number.')


def _verb_fix(m: re.Match[str], group: int, message: str) -> Finding:
    verb = m.group(group)
    fixed = m.group()[: m.start(group) - m.start()] + match_case(_VERB_SWAP[verb.lower()], verb)
    return finding(m.span(), "error", f'{message} Write "{fixed}".', fixed)


def _misspellings(text: str) -> Iterator[Finding]:
    for m in _WORD.finditer(text):
        right = MISSPELLINGS.get(m.group().lower())
        if right is not None:
            fixed = match_case(right, m.group())
            message = f'"{m.group()}" is a common misspelling of "{fixed}".'
            yield finding(m.span(), "error", message, fixed)


def _article(m: re.Match[str]) -> Finding | None:
    article, word = m.group(1), m.group(3)
    if article == "A" and not starts_sentence(m.string, m.start()):
        return None  # "Plan A is", "option A or B": a letter, not the article
    wants_an = _wants_an(word)
    if wants_an is None or wants_an == (article.lower() == "an"):
        return None
    right = match_case("an" if wants_an else "a", article)
    sound = "a vowel" if wants_an else "a consonant"
    message = f'Use "{right.lower()}" before "{word}": it starts with {sound} sound.'
    return finding(m.span(), "error", message, f"{right} {word}")


def _wants_an(word: str) -> bool | None:
    """Whether ``word`` is said with a vowel sound first; None when it is unclear."""
    head = word.split("-")[0]
    if head.isdigit():
        return _number_wants_an(head)
    if head.isupper() and len(head) > 1:
        return _acronym_wants_an(head)
    lower = head.lower()
    if len(lower) < 2 or not lower.isalpha() or lower.startswith("herb"):
        return None
    if lower in ("one", "once") or lower.startswith(_SILENT_H):
        return lower not in ("one", "once")
    if lower.startswith(_YOU_SOUND) and not lower.startswith(_UN_PREFIX):
        return False
    return lower[0] in "aeiou"


def _acronym_wants_an(acronym: str) -> bool | None:
    """Spelt-out letters ("an HTML page") unless it may be said as a word ("a REST API").

    An acronym with a vowel after its first letter may be read as a word (RAM, NASA,
    SAML), so one that starts with F, H, L, M, N, R, S or X is left alone then; "SQL"
    is read both ways.
    """
    first = acronym[0]
    if first in "AEIOU":
        return first != "U"  # "an API", "a URL"
    if first not in _LETTERS_WITH_AN:
        return False
    readable = len(acronym) > 2 and any(c in "AEIOUY" for c in acronym[1:])
    return None if readable or acronym == "SQL" else True


def _number_wants_an(digits: str) -> bool:
    """Eight, eleven and eighteen (and their thousands) start with a vowel sound."""
    return digits.startswith("8") or (digits[:2] in ("11", "18") and len(digits) % 3 == 2)


def _modal_of(m: re.Match[str]) -> Finding:
    modal = m.group(1)
    fixed = f"{modal} {match_case('have', m.group()[len(modal) :].strip())}"
    message = f'"{m.group()}" should be "{fixed}": "of" is not a verb.'
    return finding(m.span(), "error", message, fixed)


def _then(m: re.Match[str]) -> Finding:
    fixed = m.group()[: m.start(2) - m.start()] + match_case("than", m.group(2))
    message = f'Comparisons take "than", not "then": "{fixed}".'
    return finding(m.span(), "warning", message, fixed)


def _its(m: re.Match[str]) -> Finding:
    fixed = match_case("it's", m.group(1)) + m.group()[3:]
    message = f'"{m.group(1)}" is possessive; here it means "it is" or "it has": "{fixed}".'
    return finding(m.span(), "error", message, fixed)


def _their(m: re.Match[str]) -> Finding:
    fixed = match_case("there", m.group(1)) + m.group()[5:]
    message = f'"{m.group(1)}" is possessive; "something exists" takes "there": "{fixed}".'
    return finding(m.span(), "error", message, fixed)
