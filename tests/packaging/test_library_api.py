"""``import meshc`` offers validate, load, compile and render, imported lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import meshc
import pytest
from cli_kit import cli

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "meshes" / "pipeline.yaml"
TWO_WRITERS = """\
mesh: m
version: 1
types: {T: {id: str}}
streams:
  s.in: {type: T}
  s.out: {type: T, terminal: true}
agents:
  p: {role: producer, writes: [s.in]}
  b: {role: specialist, reads: [s.in], writes: [s.out], handler: "m:f"}
  c: {role: specialist, reads: [s.in], writes: [s.out], handler: "m:f"}
"""


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(TWO_WRITERS)
    return path


def test_import_meshc_loads_no_compiler() -> None:
    heavy = ("meshc.api", "pydantic", "yaml", "jinja2")
    script = f"import sys, meshc; meshc.validate; print([m for m in {heavy} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("name", ["validate", "load", "compile", "render"])
def test_each_function_is_documented(name: str) -> None:
    assert name in meshc.__all__
    doc = getattr(meshc, name).__doc__ or ""
    assert len(doc.split()) > 20


def test_validate_reports_problems_without_raising(broken: Path) -> None:
    assert meshc.validate(PIPELINE).ok
    analysis = meshc.validate(broken)
    assert not analysis.ok
    assert [d.code for d in analysis.diagnostics if d.is_error] == ["MESH103"]
    with pytest.raises(FileNotFoundError):
        meshc.validate(broken.with_name("absent.yaml"))


def test_load_returns_the_mesh_or_raises_mesh_error(broken: Path) -> None:
    core = meshc.load(str(PIPELINE))
    assert core.name == "pipeline" and set(core.agents) == {"source", "normalize", "stats"}
    with pytest.raises(meshc.MeshError) as caught:
        meshc.load(broken)
    assert {d.code for d in caught.value.analysis.diagnostics} == {"MESH103"}


def test_compile_gives_the_committed_package_bytes(
    tmp_path: Path, broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same bytes as ``meshc compile meshes/pipeline.yaml -o generated``."""
    monkeypatch.chdir(ROOT)  # the path is recorded in the headers as given
    committed = ROOT / "generated" / "pipeline"
    files = meshc.compile("meshes/pipeline.yaml", tmp_path / "out")
    assert files == {name: (committed / name).read_bytes() for name in files}
    written = tmp_path / "out" / "pipeline"
    assert {name: (written / name).read_bytes() for name in files} == files
    with pytest.raises(meshc.MeshError):
        meshc.compile(broken, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_render_matches_the_command_and_takes_a_loaded_mesh() -> None:
    printed = cli("render", str(PIPELINE), "--format", "mermaid").out
    assert meshc.render(PIPELINE, "mermaid") == printed
    core = meshc.load(PIPELINE)
    assert (
        meshc.render(core, "text", ascii=True)
        == cli("render", str(PIPELINE), "--format", "text", "--ascii").out
    )
    with pytest.raises(ValueError, match="unknown format"):
        meshc.render(core, "gif")


def test_render_still_works_once_the_render_package_is_imported() -> None:
    """Importing ``meshc.render.mermaid`` binds the package to ``meshc.render``."""
    import meshc.render.mermaid  # noqa: F401

    assert meshc.render(PIPELINE).startswith("%% pipeline v1")
    assert callable(meshc.render.render) and "mermaid" in meshc.render.FORMATS
