"""The clarity lens: sentences a reader has to work to understand.

Long sentences, the passive voice, vague emphasis, unsourced claims and wordy phrases
are not errors, so most findings are advice (``info``); only sentences long enough to
lose most readers are ``warning`` or ``error``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from meshc.examples._text import count_words, mask_code, sentence_spans, word_map, wordset
from meshc.examples.review._common import (
    Finding,
    LensResult,
    ReviewTask,
    Severity,
    finding,
    lens_result,
    normal,
    phrase_pattern,
    phrases,
    table_findings,
)

LONG_SENTENCE = 30
VERY_LONG_SENTENCE = 45

_BE = r"(?:am|is|are|was|were|be|been|being|isn['’]t|aren['’]t|wasn['’]t|weren['’]t)"
_BE_RE = re.compile(rf"(?<![\w'’-]){_BE}(?![\w'’-])", re.I)
_ADVERB = r"(?:[^\W\d_]+ly|not|also|already|often|never|always|still|now|then|all|just)"
_ACTOR_WORD = r"[^\W\d_][\w'’-]*"
_BY = rf"(?:\s+by\s+({_ACTOR_WORD}(?:[ \t]+{_ACTOR_WORD}){{0,3}}))?"
_PASSIVE = re.compile(rf"{_BE}\s+(?:{_ADVERB}\s+){{0,2}}([^\W\d_]+){_BY}(?![\w'’-])", re.I)
_IRREGULAR = wordset(
    "arisen awoken beaten begun bent bitten blown broken brought built burnt bought caught "
    "chosen dealt done drawn driven eaten fallen fed felt fought found forbidden forgotten "
    "forgiven frozen given grown hung heard hidden held hurt kept known laid led left lent "
    "lost made meant met paid proven put read rebuilt rewritten ridden run said seen sought "
    "sold sent set shaken shot shown shut spoken spent split spread stolen stuck struck "
    "sworn swept taken taught torn told thought thrown understood undone won worn "
    "withdrawn written overwritten overlooked misunderstood undertaken"
)
# Words ending in -ed that describe a state ("is interested") or are not verbs ("need").
_NOT_PASSIVE = wordset(
    "interested excited tired bored concerned worried pleased surprised supposed scared "
    "married sacred naked wicked rugged beloved advanced detailed complicated experienced "
    "sophisticated dedicated talented qualified related limited based located involved "
    "satisfied disappointed frustrated confused amazed annoyed ashamed embarrassed "
    "exhausted determined prepared thrilled delighted honoured honored committed convinced "
    "devoted relieved meant need speed seed feed greed bleed breed deed weed heed "
    "shred hundred kindred indeed"
)
_SPLIT_AT = re.compile(r";|,\s+(?:and|but|so|which|because|while|although|whereas)\b|\s+but\s+")
_INTENSIFIERS = phrase_pattern(phrases("very|really|quite|extremely|incredibly|totally|truly"))
_INTENSIFIED = re.compile(r"\s+([^\W\d_]+)")
_STRONGER = {
    "important": "crucial",
    "big": "huge",
    "large": "huge",
    "small": "tiny",
    "good": "excellent",
    "bad": "terrible",
    "happy": "delighted",
    "tired": "exhausted",
    "hard": "difficult",
    "quick": "rapid",
}
_NOT_INTENSIFIED = wordset(
    "much well few first last same least best end beginning and or but nor the a an to of in "
    "on for with at by as that which who is are was were be been it this these those than so if"
)

# Words that end a "by …" actor: "by the release manager on Monday" → "the release manager".
_ACTOR_STOP = _NOT_INTENSIFIED | wordset(
    "from after before during when while because since until last yesterday"
)
_PRONOUN_ACTORS = wordset("the a an our their his her its my your this that these those each every")
# Past tenses that differ from the participle, to turn "was written by X" into "X wrote".
_PAST = word_map(
    "written:wrote taken:took given:gave shown:showed known:knew done:did seen:saw "
    "broken:broke chosen:chose driven:drove drawn:drew eaten:ate fallen:fell "
    "forgotten:forgot forgiven:forgave frozen:froze grown:grew hidden:hid ridden:rode "
    "shaken:shook spoken:spoke stolen:stole sworn:swore torn:tore thrown:threw worn:wore "
    "withdrawn:withdrew begun:began bitten:bit blown:blew beaten:beat proven:proved "
    "rewritten:rewrote overwritten:overwrote undertaken:undertook arisen:arose "
    "awoken:awoke run:ran undone:undid forbidden:forbade"
)
_WEASELS = phrase_pattern(
    phrases(
        "many experts|some experts|experts say|experts agree|studies show|studies have shown|"
        "research shows|research has shown|some people say|many people believe|many believe|"
        "some say|it is said|it is believed|it is widely believed|it is widely known|"
        "it is well known|it is generally accepted|it has been suggested|critics say"
    )
)
_EMPTY_WORDS = phrase_pattern(
    phrases(
        "clearly|obviously|basically|essentially|literally|actually|virtually|of course|"
        "needless to say|it goes without saying|various|numerous|a variety of|countless"
    )
)
_WORDY = {
    "in order to": "to",
    "due to the fact that": "because",
    "owing to the fact that": "because",
    "in light of the fact that": "because",
    "despite the fact that": "although",
    "in spite of the fact that": "although",
    "at this point in time": "now",
    "at the present time": "now",
    "in the event that": "if",
    "for the purpose of": "for",
    "with regard to": "about",
    "in regard to": "about",
    "prior to": "before",
    "subsequent to": "after",
    "in the near future": "soon",
    "on a daily basis": "daily",
    "on a regular basis": "regularly",
    "a large number of": "many",
    "the majority of": "most",
    "each and every": "every",
    "first and foremost": "first",
    "is able to": "can",
    "are able to": "can",
    "has the ability to": "can",
    "have the ability to": "can",
    "in close proximity to": "near",
    "until such time as": "until",
    "utilize": "use",
    "utilise": "use",
    "utilized": "used",
    "utilised": "used",
    "make a decision": "decide",
    "made a decision": "decided",
    "come to a conclusion": "conclude",
    "give consideration to": "consider",
    "take into consideration": "consider",
    "conduct an investigation": "investigate",
    "reach an agreement": "agree",
    "provide assistance": "help",
    "perform an analysis": "analyse",
    "has a tendency to": "tends to",
}
_WORDY_RE = phrase_pattern(_WORDY)


def clarity(payload: ReviewTask, ctx: object) -> LensResult:
    """Review one chunk for clarity: sentence length, passive voice, vague and wordy phrases."""
    text = mask_code(payload.text)
    weasels = table_findings(_WEASELS, text, _weasel)
    findings = [
        *_long_sentences(text),
        *_passives(text, weasels),
        *weasels,
        *table_findings(_INTENSIFIERS, text, _intensifier),
        *table_findings(_EMPTY_WORDS, text, _empty_word),
        *table_findings(_WORDY_RE, text, _wordy),
    ]
    return lens_result(payload, "clarity", findings)


def _long_sentences(text: str) -> Iterator[Finding]:
    for start, end in sentence_spans(text):
        words = count_words(text, start, end)
        if words > LONG_SENTENCE:
            severity: Severity = "error" if words > VERY_LONG_SENTENCE else "warning"
            message = f"Long sentence ({words} words): readers lose the thread after about 25."
            yield finding((start, end), severity, message, _split_hint(text, start, end))


def _split_hint(text: str, start: int, end: int) -> str:
    """Point at the natural break closest to the middle of the sentence."""
    middle = (start + end) // 2
    breaks = list(_SPLIT_AT.finditer(text, start, end))
    if not breaks:
        return "Split it into two or three sentences, one idea each."
    best = min(breaks, key=lambda m: (abs(m.start() - middle), m.start()))
    return f'Split it into two sentences where it says "{best.group().strip()}".'


def _passives(text: str, weasels: list[Finding]) -> Iterator[Finding]:
    taken = [(w["start"], w["end"]) for w in weasels]
    for be in _BE_RE.finditer(text):
        m = _PASSIVE.match(text, be.start())
        if m is None:
            continue
        participle = m.group(1).lower()
        if not _is_participle(participle) or any(s < m.end() and m.start() < e for s, e in taken):
            continue
        span = (m.start(), m.end(1))
        message = f'Passive voice ("{" ".join(text[span[0] : span[1]].split())}") hides who acted.'
        yield finding(span, "info", message, _active_hint(m))


def _is_participle(word: str) -> bool:
    if word in _NOT_PASSIVE:
        return False
    return word in _IRREGULAR or (len(word) > 4 and word.endswith("ed"))


def _active_hint(m: re.Match[str]) -> str:
    """With "was … by the team" the active sentence can be spelt out; otherwise advice."""
    actor, participle = _trim_actor(m.group(2) or ""), m.group(1).lower()
    past = _PAST.get(participle, participle)
    if actor and m.group().split()[0].lower() in ("was", "were") and _names_someone(actor):
        return f'Make the actor the subject: "{actor} {past} …".'
    return f"Say who {past} it, as the subject of the sentence."


def _trim_actor(words: str) -> str:
    """ "the release manager on the previous evening" → "the release manager"."""
    kept: list[str] = []
    for word in words.split():
        if kept and word.lower() in _ACTOR_STOP:
            break
        kept.append(word)
    return " ".join(kept)


def _names_someone(actor: str) -> bool:
    """ "by the team" or "by Alice" names an actor; "by default" or "by hand" does not."""
    first = actor.split()[0]
    return first.lower() in _PRONOUN_ACTORS or first[:1].isupper()


def _weasel(m: re.Match[str]) -> Finding:
    message = f'Unsourced claim: "{m.group()}" — who, exactly, and where?'
    return finding(m.span(), "warning", message, "Name the source, or state the claim as yours.")


def _intensifier(m: re.Match[str]) -> Finding | None:
    following = _INTENSIFIED.match(m.string, m.end())
    if following is None or following.group(1).lower() in _NOT_INTENSIFIED:
        return None
    word = following.group(1)
    better = _STRONGER.get(word.lower(), word)
    message = f'"{m.group()}" adds emphasis but no information.'
    return finding((m.start(), following.end()), "info", message, better)


def _empty_word(m: re.Match[str]) -> Finding:
    word = normal(m.group())
    if word in ("various", "numerous", "a variety of", "countless"):
        message = f'Vague quantity: "{m.group()}".'
        return finding(m.span(), "info", message, "Give the number, or name them.")
    message = f'"{m.group()}" tells the reader how to feel instead of showing why.'
    return finding(m.span(), "info", message, f'Delete "{m.group()}".')


def _wordy(m: re.Match[str]) -> Finding:
    short = _WORDY[normal(m.group())]
    if m.group()[:1].isupper():
        short = short[:1].upper() + short[1:]
    return finding(m.span(), "info", f'Wordy: "{m.group()}" says no more than "{short}".', short)
