"""Text in a mesh file never becomes code in the generated package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc.api import analyze_text
from meshc.codegen import compile_analysis
from meshc.codegen.writer import write_package

PAYLOADS = [
    '"""; import os; os.system("touch {marker}"); """',
    "'; __import__('os').system('touch {marker}') #",
    "\n__import__('pathlib').Path('{marker}').touch()\n",
    "\\\n__import__('pathlib').Path('{marker}').touch()",
    "{{{{ 7*7 }}}} {{% raw %}} }}}}\"'\x00\r\u2028",
]


def mesh_text(text: str) -> str:
    """A valid mesh whose free-text fields all carry ``text``."""
    s = yaml.safe_dump(text, default_style='"', width=1_000_000).strip().removesuffix("...").strip()
    return f"""
mesh: hostile
description: {s}
types:
  T: {{a: str}}
streams:
  in.s: {{type: T, description: {s}}}
  out.s: {{type: T, terminal: true, description: {s}}}
agents:
  p: {{role: producer, writes: [in.s], description: {s}}}
  w:
    role: specialist
    description: {s}
    reads: [in.s]
    writes: [out.s]
    handler: llm
    prompt: {s}
    model: {{name: {s}, base_url: {s}}}
"""


def compile_to(tmp: Path, text: str) -> Path:
    analysis = analyze_text(mesh_text(text), "hostile.yaml")
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    folder = tmp / "hostile"
    write_package(folder, compile_analysis(analysis, "hostile.yaml"))
    return folder


def import_runs_nothing(tmp: Path, marker: Path) -> None:
    code = "import hostile, hostile.agents.w, hostile.acl, hostile.models"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "importing the generated package ran injected code"


def test_known_injections_stay_inert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for i, template in enumerate(PAYLOADS):
        out = tmp_path / f"case{i}"
        folder = compile_to(out, template.format(marker=marker))
        for path in folder.rglob("*.py"):
            ast.parse(path.read_text(encoding="utf-8"))
        import_runs_nothing(out, marker)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80))
def test_any_text_compiles_to_parseable_code(tmp_path: Path, text: str) -> None:
    folder = compile_to(tmp_path / "h", text)
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        names = {ast.unparse(c.func) for c in calls}
        assert not names & {"exec", "eval", "__import__", "os.system"}, names
