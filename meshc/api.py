"""The compiler's front door: a file in, a checked core mesh and its diagnostics out."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field

from meshc import codes
from meshc.checks import run_checks
from meshc.core import CoreMesh
from meshc.diagnostics import Diagnostic, fold_consequences, sort_diagnostics
from meshc.expand import expand
from meshc.parse import parse
from meshc.source import Limits, Source, load_bytes, load_file

# A file read with one of these has no data to parse: nothing further is checked.
_UNREADABLE = frozenset({codes.BAD_YAML.code, codes.REFUSED.code})


@dataclass
class Analysis:
    """The outcome of validating one file."""

    source: Source
    core: CoreMesh | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.core is not None and not any(d.is_error for d in self.diagnostics)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC off while a mesh is analysed: it would walk the hundreds of
    thousands of objects a big mesh makes again and again, for nothing (they are
    freed by reference counting), and make validation super-linear (docs/facts.md).

    The objects still alive at the end (the analysis) are long-lived: they go to the
    oldest generation at once, by freezing and unfreezing (two list splices), where
    the first young collection after the GC is back on would have walked every one
    of them (0.2 s for 100,000 agents). Skipped when the caller froze objects of
    its own, which unfreezing would let go.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def analyze_source(source: Source, resolve: bool = False) -> Analysis:
    with _gc_paused():
        return _analyze(source, resolve)


def _analyze(source: Source, resolve: bool) -> Analysis:
    diags = list(source.diagnostics)
    if any(d.code in _UNREADABLE for d in diags):
        return Analysis(source, None, sort_diagnostics(diags))
    parsed = parse(source)
    diags.extend(parsed.diagnostics)
    if parsed.mesh is None:
        return Analysis(source, None, fold_consequences(diags))
    dropped = frozenset(n for names in parsed.dropped.values() for n in names) | parsed.spared
    core, expand_diags = expand(parsed.mesh, source, dropped)
    del parsed  # the typed models are no longer needed: free them before the checks
    diags.extend(expand_diags)
    diags.extend(run_checks(core, source))
    if resolve:
        from meshc.checks.handlers import check_handlers

        diags.extend(check_handlers(core, source))
    return Analysis(source, core, fold_consequences(diags))


def analyze_file(path: str, *, resolve: bool = False, limits: Limits | None = None) -> Analysis:
    """Validate a file; OSError (missing, unreadable) is left to the caller."""
    with _gc_paused():
        return analyze_source(load_file(path, limits), resolve)


def analyze_text(text: str | bytes, path: str = "<mesh>", *, resolve: bool = False) -> Analysis:
    # surrogatepass: a lone surrogate (text read with surrogateescape) becomes bytes that
    # are not UTF-8, reported as MESH001 like any other undecodable input.
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    with _gc_paused():
        return analyze_source(load_bytes(path, raw), resolve)


class MeshError(Exception):
    """A mesh file that does not validate, raised by ``load_mesh``."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        errors = [d for d in analysis.diagnostics if d.is_error]
        first = errors[0] if errors else None
        where = f"{first.span.file}:{first.span.line}: {first.message}" if first else ""
        super().__init__(f"{len(errors)} error(s) in {analysis.source.path}: {where}")


def load_mesh(path: str) -> CoreMesh:
    """A valid core mesh, or MeshError with every diagnostic."""
    analysis = analyze_file(path)
    if not analysis.ok or analysis.core is None:
        raise MeshError(analysis)
    return analysis.core
