"""What both readers share: PyYAML's event parser and how a scalar becomes a value.

Scalars follow the YAML 1.2 core schema: ``yes``/``no``/``on``/``off`` stay strings,
only ``true``/``false`` are booleans. Both readers resolve plain scalars with
:func:`plain_scalar`, so they cannot disagree on a value; only the general reader
accepts tags (:func:`scalar`).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml
from meshc.source.limits import Refused

try:
    Loader: type = yaml.CSafeLoader  # the C parser: its events carry the same marks
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    Loader = yaml.SafeLoader

_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_INT_OTHER = re.compile(r"^(0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf")}
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}

# Only a scalar that starts with one of these can be anything but a string; one that
# starts with a letter among them is a string unless it is a null or a boolean.
NOT_ONLY_TEXT = frozenset("0123456789+-.~nNtTfF")
_WORDS = {
    word: value
    for words, value in ((_NULLS, None), (_TRUE, True), (_FALSE, False))
    for word in words
}
intern = sys.intern


def plain_scalar(value: str) -> Any:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if value and value[0] not in NOT_ONLY_TEXT:
        return intern(value)  # the common case: a name, often repeated (keys, types)
    if value.isdigit() and value.isascii() and (value[0] != "0" or len(value) == 1):
        return int(value)  # the most common number by far: plain decimal digits
    if value in _WORDS:
        return _WORDS[value]
    if not value or value[0] not in "0123456789+-.":
        return intern(value)  # a word that starts like `null`, `true` or `false`: `type`
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _INT_OTHER.match(value):
        return int(value, 0)
    if _FLOAT.match(value) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    lowered = value.lower()
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    if lowered == ".nan":
        return float("nan")
    return value


_TAGGED = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
}

# The tags a collection may carry: none, the non-specific `!`, or its own kind's.
COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
TAG_HELP = "mesh files use plain YAML values; remove the tag"


def scalar(event: yaml.ScalarEvent) -> Any:
    """The value of any scalar event, tagged or not; Refused for a tag mesh files do not use."""
    tag = event.tag
    if tag in (None, "!"):
        return plain_scalar(event.value) if event.implicit[0] else event.value
    if tag in _TAGGED:
        try:
            return _TAGGED[tag](event.value)
        except ValueError:
            raise Refused(
                f"the scalar {event.value!r} cannot be read as {tag.rsplit(':', 1)[-1]}",
                event.start_mark,
                "remove the tag or fix the value",
            ) from None
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return plain_scalar(event.value)
    raise Refused(f"unsupported tag {tag!r}", event.start_mark, TAG_HELP)
