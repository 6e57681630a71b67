"""Loading a mesh file: bytes → text → data, with positions indexed only when asked.

Each file goes through the fast reader first and, when it hands the file over (see
:mod:`meshc.source.fast` for when), through the general reader. Positions are read
by one more pass (:mod:`meshc.source.positions`) the first time a diagnostic asks for
a span, so a valid mesh never pays for them. A file over the size bound is refused
from its size, unread.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

from meshc import codes
from meshc.diagnostics import Span
from meshc.source import positions
from meshc.source.events import Loader, scalar
from meshc.source.fast import read_common
from meshc.source.general import read_pass
from meshc.source.limits import Limits
from meshc.source.text import NeedPositions, Source, decode


def load_bytes(path: str, raw: bytes, limits: Limits | None = None) -> Source:
    """Load a mesh file's bytes; problems become diagnostics on the Source."""
    limits = limits or Limits()
    if len(raw) > limits.max_bytes:
        return _too_large(path, len(raw), limits)
    text, problem = decode(path, raw)
    source = Source(path, text or "")
    if problem is not None:
        source.diagnostics.append(problem)
        return source
    _read(source, limits)
    return source


def load_file(path: str, limits: Limits | None = None) -> Source:
    """Load a file from disk; one over the size bound is refused from its size alone,
    unread. OSError is left to the caller (exit code 2)."""
    limits = limits or Limits()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size  # 0 for a pipe: read, bounded
        if size > limits.max_bytes:
            return _too_large(path, size, limits)
        raw = handle.read(limits.max_bytes + 1)
    return load_bytes(path, raw, limits)


def _too_large(path: str, size: int, limits: Limits) -> Source:
    source = Source(path, "")
    more = "more than " if size == limits.max_bytes + 1 else ""  # a pipe, read to the bound
    source.diagnostics.append(
        codes.REFUSED.at(
            Span(path, 1, 1, 1, 1),
            f"the file is {more}{size:,} bytes; the limit is {limits.max_bytes:,}",
            help_text="a mesh file is far smaller: check that this is the file you meant "
            "(`meshc validate --max-bytes N` raises the limit)",
        )
    )
    return source


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
        source.indexer = index


def index(source: Source) -> None:
    """The positions of a file already read without a problem: one more pass over its
    events, building no data (:mod:`meshc.source.positions`)."""
    loader = Loader(source.text)
    try:
        with _gc_paused():
            source.positions = positions.index(loader, scalar)
    finally:
        loader.dispose()


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
