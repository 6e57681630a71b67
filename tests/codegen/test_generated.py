"""The committed ``generated/`` packages are exactly what ``meshc compile`` writes,
byte for byte and on every run, and they pass ruff and mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from meshc.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "meshes").glob("*.yaml"))
REFRESH = "meshc compile meshes/{name}.yaml -o generated"


@pytest.fixture()
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.mark.parametrize("name", EXAMPLES)
def test_committed_package_is_fresh(
    in_repo: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["compile", f"meshes/{name}.yaml", "-o", "generated", "--check"])
    out = capsys.readouterr()
    assert code == 0, (
        f"generated/{name} is stale; refresh with `{REFRESH.format(name=name)}`\n{out.out}"
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_compile_is_deterministic(in_repo: Path, name: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["compile", f"meshes/{name}.yaml", "-o", str(first)]) == 0
    assert main(["compile", f"meshes/{name}.yaml", "-o", str(second)]) == 0
    files_a = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_header_names_the_source_as_given_and_its_hash(in_repo: Path) -> None:
    text = (ROOT / "generated" / "doc_review" / "topology.py").read_text()
    assert "from meshes/doc_review.yaml (sha256:" in text
    assert str(ROOT) not in text
    for path in (ROOT / "generated").rglob("*.py"):
        assert "Do not edit" in path.read_text(), path


def test_check_reports_a_stale_package(
    in_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["compile", "meshes/pipeline.yaml", "-o", str(out)]) == 0
    topology = out / "pipeline" / "topology.py"
    topology.write_text(topology.read_text() + "# hand edit\n")
    (out / "pipeline" / "stray.py").write_text("x = 1\n")
    capsys.readouterr()
    assert main(["compile", "meshes/pipeline.yaml", "-o", str(out), "--check"]) == 1
    diff = capsys.readouterr().out
    assert "-# hand edit" in diff and "stray.py" in diff
    assert main(["compile", "meshes/pipeline.yaml", "-o", str(out)]) == 0
    assert not (out / "pipeline" / "stray.py").exists()
    assert main(["compile", "meshes/pipeline.yaml", "-o", str(out), "--check"]) == 0


def test_invalid_mesh_does_not_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mesh: bad\nstreams: {a: {type: T}}\n")
    assert main(["compile", str(bad), "-o", str(tmp_path / "out")]) == 1
    assert "MESH201" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["compile", str(tmp_path / "nope.yaml"), "-o", str(tmp_path)]) == 2


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_generated_code_passes_ruff_and_mypy(in_repo: Path) -> None:
    for args in (["check", "generated"], ["format", "--check", "generated"]):
        proc = subprocess.run([_tool("ruff"), *args], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [_tool("mypy"), "--strict", "generated"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generated_package_imports_and_matches_the_model(in_repo: Path) -> None:
    code = (
        "import generated.doc_review as g, json;"
        "m = g.MESH;"
        "print(json.dumps([sorted(m.streams), sorted(m.agents),"
        " m.agents['aggregator'].join.lanes, m.agents['grammar'].handler]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    import json

    streams, agents, lanes, handler = json.loads(proc.stdout)
    assert "doc.review.summary" in streams and len(streams) == 10
    assert agents == sorted(
        ["aggregator", "clarity", "coordinator", "grammar", "ingestion", "structure", "tone"]
    )
    assert lanes == {f"doc.suggestions.{k}": k for k in ("clarity", "grammar", "structure", "tone")}
    assert handler == "meshc.examples.review.grammar:grammar"
