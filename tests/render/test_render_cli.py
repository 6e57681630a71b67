"""``meshc render``: formats, output files, exit codes and messages (never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from meshc.cli import main
from render_support import ROOT

DOC = str(ROOT / "meshes" / "doc_review.yaml")

INVALID = """\
mesh: broken
version: 1
types:
  T: {id: str}
streams:
  a.in: {type: T}
  a.out: {type: T, terminal: true}
agents:
  p: {role: producer, writes: [a.in]}
  w1: {role: specialist, reads: [a.in], writes: [a.out], handler: "m:f"}
  w2: {role: specialist, reads: [a.in], writes: [a.out], handler: "m:g"}
"""

# Valid, with one warning: nobody reads a.out and it is not terminal (MESH106).
WARNS = """\
mesh: broken
version: 1
types:
  T: {id: str}
streams:
  a.in: {type: T}
  a.out: {type: T}
agents:
  p: {role: producer, writes: [a.in]}
  w1: {role: specialist, reads: [a.in], writes: [a.out], handler: "m:f"}
"""


@pytest.mark.parametrize("fmt", ["mermaid", "sequence", "dot", "text", "svg", "html"])
def test_each_text_format_goes_to_stdout(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", DOC, "--format", fmt]) == 0
    out, err = capsys.readouterr()
    assert out and err == ""
    assert "doc.review.summary" in out


def test_default_format_is_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", DOC]) == 0
    assert "flowchart LR" in capsys.readouterr().out


def test_png_needs_an_output_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", DOC, "--format", "png"]) == 2
    assert "give -o PATH" in capsys.readouterr().err


def test_output_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, mmd = tmp_path / "d.png", tmp_path / "d.mmd"
    assert main(["render", DOC, "--format", "png", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["render", DOC, "-o", str(mmd)]) == 0
    assert mmd.read_text(encoding="utf-8").startswith("%% doc_review v1")
    out, err = capsys.readouterr()
    assert out == "" and f"wrote {mmd}" in err


def test_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", DOC, "-o", str(tmp_path / "no" / "such" / "d.mmd")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_invalid_mesh_prints_diagnostics_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(INVALID, encoding="utf-8")
    assert main(["render", str(path), "--color", "never"]) == 1
    out, err = capsys.readouterr()
    assert out == "", "nothing is drawn for an invalid mesh"
    assert "[MESH103]" in err and "`w1`" in err and "`w2`" in err


def test_warnings_go_to_stderr_and_the_diagram_still_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "warns.yaml"
    path.write_text(WARNS, encoding="utf-8")
    assert main(["render", str(path), "--color", "never"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("%% broken v1") and "MESH106" not in out
    assert "[MESH106]" in err


@pytest.mark.parametrize(
    "content", [b"mesh: [unclosed\n", b"\xff\xfe not utf-8", b"", b"- just\n- a list\n"]
)
def test_broken_input_exits_1_without_traceback(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["render", str(path), "--color", "never"]) == 1
    assert "error" in capsys.readouterr().err


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "no/such/mesh.yaml"]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["render", DOC, "--format", "pdf"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--redis", "redis://x"], "--redis is used with --live only"),
        (["--live", "--format", "sequence"], "--live annotates"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", DOC, *args]) == 2
    assert message in capsys.readouterr().err


def test_no_graphviz_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("meshc.render.engine.shutil.which", lambda name: None)
    monkeypatch.setattr("meshc.render.engine.sys.executable", "/nonexistent/bin/python")
    assert main(["render", DOC, "--format", "svg"]) == 1
    err = capsys.readouterr().err
    assert "graphviz-pure" in err and "meshc[render]" in err and "Traceback" not in err


def test_text_falls_back_to_ascii_on_a_non_utf8_terminal() -> None:
    env = os.environ | {"PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [sys.executable, "-m", "meshc", "render", DOC, "--format", "text"],
        capture_output=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done.stdout.decode("ascii")
    assert b"`-- doc.review.tasks (ReviewTask)" in done.stdout
