"""The fast reader: the YAML that mesh files are made of, in one flat loop.

This is the one statement of what the fast path covers; the loader
(:mod:`meshc.source.load`) and the general reader (:mod:`meshc.source.general`)
follow it and do not restate it.

**Covered** (``read_common`` returns True and sets ``source.data``): at most one
YAML document (an empty file gives None) of block or flow mappings and sequences and
scalars (plain, quoted, literal or folded) with no tag and no anchor, nested at most
``Limits.max_depth`` deep, with at most ``Limits.max_nodes`` scalars. Plain scalars
resolve by the YAML 1.2 core schema (:func:`meshc.source.events.plain_scalar`, shared
with the general reader). No position is recorded: a valid mesh never needs one.

**Handed over** to the general reader, which reads the whole file again from its
first byte:

- without positions (``read_common`` returns False) on the first of: a tag (``!!str``,
  even the non-specific ``!``) or an anchor (``&name``) on any node; an alias
  (``*name``); a merge key (``<<``); a second document; a collection used as a
  mapping key; nesting deeper than ``max_depth``; more than ``max_nodes`` scalars;
  any YAML syntax error (the general reader reports it with its position, and the
  bounds as MESH004);
- with positions (``read_common`` raises :class:`~meshc.source.text.NeedPositions`)
  on a key that appears twice in one mapping, since MESH003 names the positions of
  both.

On whatever it covers, the fast reader builds exactly the data the general reader
builds (the differential tests in ``tests/validator/test_source.py`` hold them to
it); it is about twice as fast because it makes no call per event.
"""

from __future__ import annotations

from typing import Any

import yaml
from meshc.source.events import NOT_ONLY_TEXT, Loader, intern, plain_scalar
from meshc.source.limits import Limits
from meshc.source.text import NeedPositions, Source

_NO_KEY = object()


def read_common(source: Source, limits: Limits) -> bool:
    """Read ``source.text`` if the fast path covers it (see the module docstring)."""
    loader = Loader(source.text)
    get_event = loader.get_event
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    map_start, seq_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    map_end, seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    doc_start = yaml.DocumentStartEvent
    not_only_text, plain, intern_ = NOT_ONLY_TEXT, plain_scalar, intern
    max_depth, max_nodes = limits.max_depth, limits.max_nodes
    no_key = _NO_KEY
    # The open collections, and for each open mapping the key waiting for its value.
    stack: list[Any] = []
    keys: list[Any] = []
    top: Any = None
    key: Any = no_key
    root: Any = None
    nodes = documents = 0
    try:
        while (event := get_event()) is not None:
            kind = type(event)
            if kind is scalar_event:
                if event.tag is not None or event.anchor is not None:
                    return False
                value: Any = event.value
                if event.implicit[0]:
                    if not value or value[0] in not_only_text:
                        value = plain(value)
                    else:
                        value = intern_(value)
                nodes += 1  # scalars are what the bound counts, as in the general reader
                if nodes > max_nodes:
                    return False
            elif kind is map_start or kind is seq_start:
                if event.tag is not None or event.anchor is not None:
                    return False
                if len(stack) >= max_depth or (type(top) is dict and key is no_key):
                    return False  # too deep, or a collection as a key
                stack.append(top)
                keys.append(key)
                top, key = ({} if kind is map_start else []), no_key
                continue
            elif kind is map_end or kind is seq_end:
                value, top, key = top, stack.pop(), keys.pop()
            elif kind is doc_start:
                documents += 1
                if documents > 1:
                    return False
                continue
            elif kind is alias_event:
                return False
            else:
                continue  # stream and document ends
            if type(top) is list:
                top.append(value)
            elif type(top) is dict:
                if key is no_key:  # a scalar: a collection as a key gave up above
                    if value == "<<":
                        return False
                    key = value
                    continue
                if key in top:
                    raise NeedPositions
                top[key] = value
                key = no_key
            else:
                root = value
    except yaml.YAMLError:
        return False
    finally:
        loader.dispose()
    source.data = root
    return True
