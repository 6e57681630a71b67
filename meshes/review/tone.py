"""The tone lens: how the text will sound to the person reading it.

Shouting, stacked exclamation marks and rudeness put readers on the defensive;
hedging makes a writer sound unsure of a point they want acted on. Both are easy to
miss in one's own writing and cheap to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from meshc.examples._text import mask_code, wordset
from meshc.examples.review._common import (
    Finding,
    LensResult,
    ReviewTask,
    finding,
    lens_result,
    normal,
    phrase_pattern,
    phrases,
    starts_sentence,
    table_findings,
)

SHOUT_MIN_LETTERS = 4
EXCLAMATIONS_PER_CHUNK = 2

_CAPS = r"[A-Z][A-Z'’-]*[A-Z]"
_CAPS_RUN = re.compile(rf"(?<![\w'’-]){_CAPS}(?:[ \t]+{_CAPS})*(?![\w'’-])")
_ACRONYMS = wordset(
    "API APIS HTTP HTTPS JSON YAML HTML XML CSV PDF URL URI SQL CPU GPU RAM SSD DNS TLS SSL "
    "TCP UDP SSH AWS GCP SDK CLI GUI REST CRUD UUID UTC ISO ASAP FAQ FYI TBD TODO FIXME NOTE "
    "README LICENSE CHANGELOG NASA NATO GDPR HIPAA SOC SLA SLO SLI KPI OKR ROI CEO CTO CFO COO "
    "AI ML LLM EOF UTF ASCII ANSI POSIX LDAP OAUTH SAML JWT CORS CSRF XSS VPN LAN WAN NAT USB "
    "HDMI WIFI EMEA APAC USA EOD EOW ETA RFC SRE OOM PID RPC GRPC AMQP MQTT SMTP IMAP NFS IAM "
    "KMS VPC CDN WASM INFO WARN ERROR DEBUG FATAL TRACE GET POST PUT PATCH DELETE HEAD "
    "OPTIONS NULL TRUE FALSE MIT BSD GPL NPM"
)
_EXCLAMATION_RUN = re.compile(r"[!?]*![!?]+|[!?]+!")
_SINGLE_BANG = re.compile(r"(?<![!?])!(?![!?=\[])")  # not "![image]" or "!="
_KIND_OF = re.compile(r"(?<![\w'’-])(?:kind|sort)\s+of(?![\w'’-])", re.I)
_DETERMINERS = wordset(
    "a an the this that these those what which any every each some no one same other another "
    "new different right wrong of all whatever"
)
_JUST = re.compile(
    r"(?<![\w'’-])just(?=\s+(?:wanted|want|wondering|checking|a\s+quick|a\s+small|a\s+thought|"
    r"to\s+let|to\s+check|to\s+say|to\s+clarify|to\s+follow\s+up)\b)",
    re.I,
)
_HEDGES = {
    "i think": 'Drop "I think" and state the point.',
    "i believe": 'Drop "I believe" and state the point.',
    "i feel like": 'Drop "I feel like" and state the point.',
    "i guess": 'Drop "I guess": say what you know, or what you need to find out.',
    "i suppose": 'Drop "I suppose" and state the point.',
    "in my opinion": "Drop it: the reader knows whose document this is.",
    "maybe": 'Decide, or say what the decision depends on, instead of "maybe".',
    "perhaps": 'Decide, or say what the decision depends on, instead of "perhaps".',
    "hopefully": "Say what you will do to make it happen.",
    "i was wondering if": 'Ask directly: "Could you …?"',
    "might want to": "should",
    "if that makes sense": "Delete it; if it might not make sense, rewrite the point.",
    "a little bit": "Give the amount, or delete it.",
}
_HEDGES_RE = phrase_pattern(_HEDGES)
_RUDE = {
    "per my last email": "Restate the point in one line; skip the reproach.",
    "as i already said": "Restate the point in one line; skip the reproach.",
    "as i said before": "Restate the point in one line; skip the reproach.",
    "as previously stated": "Restate the point in one line; skip the reproach.",
    "any idiot": "Describe the step plainly, without judging the reader.",
    "everyone knows": "Not everyone does: explain it, or link to an explanation.",
    "nobody cares": "Say what matters instead.",
}
_INSULTS = phrases("stupid|idiotic|dumb|ridiculous|pathetic|incompetent|useless")
_RUDE_RE = phrase_pattern([*_RUDE, *_INSULTS])
_CONDESCENDING = phrase_pattern(phrases("simply|just run|just use|just add|easily"))


def tone(payload: ReviewTask, ctx: object) -> LensResult:
    """Review one chunk for tone: shouting, exclamation marks, hedging, rudeness."""
    text = mask_code(payload.text)
    findings = [
        *_shouting(text),
        *_exclamations(text),
        *table_findings(_HEDGES_RE, text, _hedge),
        *table_findings(_KIND_OF, text, _kind_of),
        *table_findings(_JUST, text, _just),
        *table_findings(_RUDE_RE, text, _rude),
        *table_findings(_CONDESCENDING, text, _condescending),
    ]
    return lens_result(payload, "tone", findings)


def _shouting(text: str) -> Iterator[Finding]:
    for m in _CAPS_RUN.finditer(text):
        shouted = [w for w in m.group().split() if _is_shouted(w)]
        if shouted:
            calm = _calm(m.group(), starts_sentence(text, m.start()))
            message = f'"{m.group()}" in capitals reads as shouting; use *emphasis* if needed.'
            yield finding(m.span(), "warning", message, calm)


def _is_shouted(word: str) -> bool:
    letters = _letters(word)
    return len(letters) >= SHOUT_MIN_LETTERS and letters not in _ACRONYMS


def _letters(word: str) -> str:
    return "".join(c for c in word if c.isalpha())


def _calm(run: str, sentence_start: bool) -> str:
    words = [w if _letters(w) in _ACRONYMS else w.lower() for w in run.split()]
    calm = " ".join(words)
    return calm[:1].upper() + calm[1:] if sentence_start else calm


def _exclamations(text: str) -> Iterator[Finding]:
    """A run such as "!!!" always; single "!" once a passage has more than a couple."""
    runs = list(_EXCLAMATION_RUN.finditer(text))
    singles = list(_SINGLE_BANG.finditer(text))
    for m in runs:
        fixed = "?" if "?" in m.group() else "."
        message = f'"{m.group()}": one mark says it; a run sounds like panic or hype.'
        yield finding(m.span(), "warning", message, fixed)
    if len(runs) + len(singles) > EXCLAMATIONS_PER_CHUNK:
        total = len(runs) + len(singles)
        for m in singles:
            message = f"{total} exclamation marks in one passage; keep one for real news at most."
            yield finding(m.span(), "info", message, ".")


def _hedge(m: re.Match[str]) -> Finding:
    advice = _HEDGES[normal(m.group())]
    return finding(m.span(), "info", f'Hedge: "{m.group()}" undercuts the point.', advice)


def _kind_of(m: re.Match[str]) -> Finding | None:
    """ "a kind of cache" is a noun; "it is kind of slow" is a hedge."""
    before = m.string[max(0, m.start() - 30) : m.start()].split()
    if before and before[-1].lower().strip(",;:(\"'“") in _DETERMINERS:
        return None
    message = f'Hedge: "{m.group()}" blurs what you mean.'
    return finding(m.span(), "info", message, f'Delete "{m.group()}", or say how much.')


def _just(m: re.Match[str]) -> Finding:
    message = '"just" shrinks the request and the writer with it.'
    return finding(m.span(), "info", message, 'Delete "just".')


def _rude(m: re.Match[str]) -> Finding:
    phrase = normal(m.group())
    advice = _RUDE.get(phrase, "Describe the problem itself; judging people makes them defend.")
    message = f'"{m.group()}" will read as hostile.'
    return finding(m.span(), "warning", message, advice)


def _condescending(m: re.Match[str]) -> Finding:
    word = m.group().split()[0]
    message = f'"{word}" tells the reader it is easy; if it is not for them, it stings.'
    return finding((m.start(), m.start() + len(word)), "info", message, f'Delete "{word}".')
