"""Loading a mesh file: bytes → text → data, with positions indexed only when asked.

Each file goes through the fast reader first and, when it hands the file over (see
:mod:`meshc.source.fast` for when), through the general reader. Positions are read
by a second pass of the general reader the first time a diagnostic asks for a span,
so a valid mesh never pays for them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator

from meshc import codes
from meshc.diagnostics import Span
from meshc.source.fast import read_common
from meshc.source.general import read_pass
from meshc.source.limits import Limits
from meshc.source.text import NeedPositions, Source, decode


def load_bytes(path: str, raw: bytes, limits: Limits | None = None) -> Source:
    """Load a mesh file's bytes; problems become diagnostics on the Source."""
    limits = limits or Limits()
    if len(raw) > limits.max_bytes:
        source = Source(path, "")
        source.diagnostics.append(
            codes.REFUSED.at(
                Span(path, 1, 1, 1, 1),
                f"the file is {len(raw):,} bytes; the limit is {limits.max_bytes:,}",
                help_text="split the mesh, or raise the limit with --max-bytes",
            )
        )
        return source
    text, problem = decode(path, raw)
    source = Source(path, text or "")
    if problem is not None:
        source.diagnostics.append(problem)
        return source
    _read(source, limits)
    return source


def load_file(path: str, limits: Limits | None = None) -> Source:
    """Load a file from disk. OSError is left to the caller (exit code 2)."""
    limits = limits or Limits()
    with open(path, "rb") as handle:
        raw = handle.read(limits.max_bytes + 1)
    return load_bytes(path, raw, limits)


def _read(source: Source, limits: Limits) -> None:
    """Read the data without positions, and index them only if someone asks.

    A file with a duplicate key (MESH003, reported with both positions) is read again
    with positions at once; any other problem carries its position in its mark.
    """
    with _gc_paused():
        try:
            if not read_common(source, limits):
                read_pass(source, limits, positions=False)
        except NeedPositions:
            read_pass(source, limits, positions=True)
            return
    if source.data is not None:
        source.indexer = functools.partial(index, limits=limits)


def index(source: Source, limits: Limits) -> None:
    """The positions of a file already read: a second pass over the same events."""
    shadow = Source(source.path, source.text)
    with _gc_paused():
        read_pass(shadow, limits, positions=True)
    source.spans, source.key_spans = shadow.spans, shadow.key_spans


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC off while reading: it makes loading big files super-linear
    (docs/facts.md, "YAML loading"), and reading makes no cycles to collect."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
