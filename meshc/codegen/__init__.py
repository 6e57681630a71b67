"""Code generation: context objects, templates, and the one writer of files."""

from __future__ import annotations

from pathlib import Path

from meshc.api import Analysis
from meshc.codegen.writer import CodegenError, diff_package, render_package, write_package

__all__ = ["CodegenError", "compile_analysis", "diff_package", "write_package"]


def mermaid_for(analysis: Analysis) -> str:
    from meshc.render import mermaid

    assert analysis.core is not None
    return mermaid.flowchart(analysis.core).rstrip("\n")


def compile_analysis(analysis: Analysis, source_path: str) -> dict[str, bytes]:
    """The files of the package for a valid analysis (paths relative to DIR/<mesh>/)."""
    assert analysis.core is not None
    raw = analysis.source.text.encode("utf-8")
    return render_package(analysis.core, source_path, raw, mermaid_for(analysis))


def package_dir(out: str | Path, mesh: str) -> Path:
    return Path(out) / mesh
