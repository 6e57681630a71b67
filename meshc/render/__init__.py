"""Diagrams of a validated mesh: pure functions of the core mesh, one module per format.

``mermaid`` (flowchart), ``sequence`` (Mermaid sequence of one task), ``dot``
(Graphviz source), ``text`` (a tree for the terminal), ``html`` (a report) and
``asyncapi`` (an AsyncAPI 3.0.0 document, YAML or JSON) are deterministic text;
``svg`` and ``png`` run Graphviz on the DOT text. ``live`` figures come in as plain
data (:mod:`meshc.render.live`), read by ``meshc.ops.live``.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence
from typing import Any

from meshc.core import CoreMesh
from meshc.diagnostics import Diagnostic
from meshc.render.asyncapi import asyncapi
from meshc.render.dot import dot
from meshc.render.engine import (
    GraphvizError,
    graphviz_command,
    picture_attributes,
    run_graphviz,
)
from meshc.render.html import report
from meshc.render.live import GroupStats, LiveStats
from meshc.render.mermaid import flowchart
from meshc.render.sequence import sequence
from meshc.render.text import text

FORMATS = ("mermaid", "sequence", "dot", "svg", "png", "html", "text", "asyncapi")
BINARY = ("png",)

__all__ = [
    "BINARY",
    "FORMATS",
    "GraphvizError",
    "GroupStats",
    "LiveStats",
    "asyncapi",
    "dot",
    "flowchart",
    "graphviz_command",
    "picture_attributes",
    "render",
    "render_mesh",
    "report",
    "run_graphviz",
    "sequence",
    "text",
]


def render(
    core: CoreMesh,
    fmt: str,
    *,
    diagnostics: Sequence[Diagnostic] = (),
    live: LiveStats | None = None,
    ascii: bool = False,
    as_json: bool = False,
    dpi: int | None = None,
    size: tuple[int, int] | None = None,
) -> str | bytes:
    """One format of ``core``; bytes for png, str otherwise.

    Raises ValueError for an unknown format and GraphvizError when svg, png or html
    cannot run Graphviz. ``live`` is not drawn in the sequence diagram, which shows
    one task rather than the state of the server, nor in the AsyncAPI document, which
    describes the interface; ``as_json`` writes that document as JSON instead of YAML.
    ``dpi`` and ``size`` (pixels, width and height) set a PNG's resolution and box.
    """
    if fmt == "mermaid":
        return flowchart(core, live)
    if fmt == "sequence":
        return sequence(core)
    if fmt == "dot":
        return dot(core, live)
    if fmt == "text":
        return text(core, live, ascii=ascii)
    if fmt == "asyncapi":
        return asyncapi(core, as_json=as_json)
    if fmt == "svg":
        return run_graphviz(dot(core, live), "svg").decode("utf-8")
    if fmt == "png":
        return run_graphviz(dot(core, live), "png", picture_attributes(dpi, size))
    if fmt == "html":
        svg = run_graphviz(dot(core, live), "svg").decode("utf-8")
        return report(core, svg, diagnostics, live)
    raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def render_mesh(
    mesh: str | os.PathLike[str] | CoreMesh, fmt: str = "mermaid", **options: Any
) -> str | bytes:
    """A diagram or document of a mesh, as ``meshc render --format FMT`` prints it: the
    library function ``meshc.render``.

    ``mesh`` is a file (loaded and checked first: MeshError when it has an error) or
    a mesh from ``meshc.load``; ``fmt`` one of mermaid, sequence, dot, svg, png, html,
    text or asyncapi (bytes for png, text otherwise). ``options`` are those of
    :func:`render`: ``ascii``, ``as_json`` (asyncapi as JSON), ``dpi`` and ``size``
    (png). Raises ValueError for an unknown format and GraphvizError when svg, png
    or html find no Graphviz.
    """
    if isinstance(mesh, str | os.PathLike):
        from meshc.api import load_mesh

        mesh = load_mesh(os.fspath(mesh))
    return render(mesh, fmt, **options)


class _CallablePackage(types.ModuleType):
    """Importing this package binds it to the name ``meshc.render``, in place of the
    library function of that name (Python sets a subpackage on its parent): calling
    the package does what the function does, so ``meshc.render(...)`` always works."""

    def __call__(
        self, mesh: str | os.PathLike[str] | CoreMesh, fmt: str = "mermaid", **options: Any
    ) -> str | bytes:
        return render_mesh(mesh, fmt, **options)


sys.modules[__name__].__class__ = _CallablePackage
