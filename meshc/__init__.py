"""meshc: a declarative compiler and validator for Agentic Meshes on Redis Streams.

The library API, the same steps as the commands::

    import meshc

    analysis = meshc.validate("meshes/doc_review.yaml")   # every diagnostic, never raises
    core = meshc.load("meshes/doc_review.yaml")            # the checked mesh, or MeshError
    files = meshc.compile("meshes/doc_review.yaml", "generated")   # writes generated/doc_review/
    text = meshc.render("meshes/doc_review.yaml", "mermaid")

Each function imports what it needs when it is called, so ``import meshc`` costs no
more than this module (the command line starts sooner, and so does a program that
only wants ``meshc.__version__``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshc.api import Analysis
    from meshc.core import CoreMesh

__version__ = "0.1.0"
__all__ = ["MeshError", "__version__", "compile", "load", "render", "validate"]

PathLike = str | os.PathLike[str]


def validate(path: PathLike, *, resolve: bool = False) -> Analysis:
    """Every check of ``meshc validate`` on one mesh file, all problems at once.

    Returns an :class:`meshc.api.Analysis`: ``.ok`` (no error), ``.diagnostics`` (each
    with ``.code``, ``.message``, ``.span`` and ``.is_error``) and ``.core`` (the
    checked mesh, or None when the file could not be read as a mesh). ``resolve``
    also imports each handler (MESH301-303), which runs user code. Raises OSError
    when the file cannot be opened; a broken mesh is reported, never raised.
    """
    from meshc.api import analyze_file

    return analyze_file(os.fspath(path), resolve=resolve)


def load(path: PathLike) -> CoreMesh:
    """The checked mesh of a valid file (:class:`meshc.core.CoreMesh`).

    Raises :class:`MeshError` (its ``.analysis`` holds every diagnostic) when the
    file has an error, OSError when it cannot be opened.
    """
    from meshc.api import load_mesh

    return load_mesh(os.fspath(path))


def compile(path: PathLike, output: PathLike | None = None) -> dict[str, bytes]:
    """The worker package of a mesh file, as ``meshc compile`` makes it.

    Returns {path relative to the package folder: bytes}, the same bytes on every
    run. With ``output``, also writes them to ``output/<mesh>/`` (removing generated
    files no longer produced), as ``meshc compile FILE -o OUTPUT`` does. Raises
    :class:`MeshError` for an invalid mesh and ``meshc.codegen.CodegenError`` when
    the code cannot be produced (no formatter).
    """
    from meshc.api import MeshError
    from meshc.codegen import compile_analysis, package_dir, write_package

    analysis = validate(path)
    if not analysis.ok or analysis.core is None:
        raise MeshError(analysis)
    files = compile_analysis(analysis, os.fspath(path))
    if output is not None:
        write_package(package_dir(Path(output), analysis.core.name), files)
    return files


def render(mesh: PathLike | CoreMesh, fmt: str = "mermaid", **options: Any) -> str | bytes:
    """A diagram or document of a mesh, as ``meshc render --format FMT`` prints it.

    ``mesh`` is a file or a mesh from :func:`load`; ``fmt`` one of mermaid, sequence,
    dot, svg, png, html, text or asyncapi (bytes for png, text otherwise). Options
    are those of :func:`meshc.render.render`: ``ascii``, ``as_json`` (asyncapi as
    JSON), ``dpi`` and ``size`` (png). Raises ValueError for an unknown format,
    :class:`MeshError` for an invalid file and ``meshc.render.GraphvizError`` when
    svg, png or html find no Graphviz.
    """
    from meshc.render import render_mesh

    return render_mesh(mesh, fmt, **options)


def __getattr__(name: str) -> Any:
    """``meshc.MeshError`` without importing the compiler at ``import meshc``."""
    if name == "MeshError":
        from meshc.api import MeshError

        return MeshError
    raise AttributeError(f"module 'meshc' has no attribute {name!r}")
