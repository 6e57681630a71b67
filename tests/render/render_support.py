"""Shared helpers of the render tests (a uniquely named module: test folders here have
no ``__init__.py``, so two ``conftest`` modules would shadow each other on import).

Golden files live in ``tests/render/golden/`` and are named after the example and the
format. A mismatch shows a diff and the one command that refreshes them all.
"""

from __future__ import annotations

import difflib
import functools
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from meshc.api import analyze_file
from meshc.core import CoreMesh

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
# Every example mesh, plus case files: names and shapes that are hard to draw
# (tricky.yaml), partitions and every kind of field type (partitioned.yaml).
EXAMPLES = [
    *sorted((ROOT / "meshes").glob("*.yaml")),
    *sorted((ROOT / "tests/render/cases").glob("*.yaml")),
]
EXAMPLE_IDS = [p.stem for p in EXAMPLES]
REFRESH = "MESHC_UPDATE_GOLDEN=1 .venv/bin/pytest tests/render"
CHROMIUM = "/usr/bin/chromium"
NODE_DIR = Path(os.environ.get("MESHC_RENDER_NODE_DIR", ROOT / ".cache" / "render-node"))
MERMAID_JS = NODE_DIR / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
ASYNCAPI_PARSER = NODE_DIR / "node_modules" / "@asyncapi" / "parser"
INSTALL = "bash .ci/install-render-deps.sh"


@functools.cache
def example_core(path: Path) -> CoreMesh:
    analysis = analyze_file(str(path))
    assert analysis.ok and analysis.core is not None, analysis.diagnostics
    return analysis.core


def check_golden(name: str, actual: str) -> None:
    """Compare ``actual`` with ``golden/<name>`` byte for byte (or rewrite it on request)."""
    path = GOLDEN / name
    if os.environ.get("MESHC_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
        return
    if not path.exists():
        pytest.fail(f"golden file {path.relative_to(ROOT)} is missing; create it with: {REFRESH}")
    expected = path.read_bytes().decode("utf-8")
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                f"golden/{name}",
                "rendered",
            )
        )
        pytest.fail(f"{name} differs from its golden file:\n{diff}\nrefresh with: {REFRESH}")


@dataclass(frozen=True)
class Browser:
    chromium: str
    mermaid_js: Path

    def run(self, page: Path, *extra: str, budget_ms: int = 10000) -> str:
        """Load ``page`` headless with the flags of FACTS.md; return what it printed."""
        with tempfile.TemporaryDirectory(prefix="meshc-chromium-") as profile:
            done = subprocess.run(
                [
                    self.chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    f"--user-data-dir={profile}",
                    "--allow-file-access-from-files",
                    f"--virtual-time-budget={budget_ms}",
                    *extra,
                    page.as_uri(),
                ],
                capture_output=True,
                timeout=120,
                check=False,
                cwd=page.parent,
            )
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
        return done.stdout.decode("utf-8", "replace")
