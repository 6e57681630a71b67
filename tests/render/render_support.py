"""Shared helpers of the render tests (a uniquely named module: test folders here have
no ``__init__.py``, so two ``conftest`` modules would shadow each other on import).

Golden files live in ``tests/render/golden/`` and are named after the example and the
format. A mismatch shows a diff and the one command that refreshes them all.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
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


def sequence_participants(core: CoreMesh) -> set[str]:
    """Who a sequence diagram shows: every agent and stream, but a lane family as one
    participant, ``review ×4``."""
    free = {n for table in (core.agents, core.streams) for n, i in table.items() if not i.family}
    return free | {f"{name} ×{len(lanes)}" for name, lanes in core.families.items() if lanes}


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
        """Load ``page`` headless with the flags of docs/facts.md; return what it printed."""
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


def find_browser() -> Browser:
    """Debian's chromium and the pinned mermaid package; skip without them (fail in CI)."""
    missing = [str(p) for p in (Path(CHROMIUM), MERMAID_JS) if not p.exists()]
    if missing:
        reason = f"browser tests need {', '.join(missing)}; install them with: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Browser(CHROMIUM, MERMAID_JS)


# A page that parses and renders every diagram and writes the outcome into a DOM
# attribute, which Chromium's --dump-dom brings back.
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><script src="{mermaid}"></script></head>
<body><pre id="result" data-state="pending"></pre>
<script type="application/json" id="diagrams">{diagrams}</script>
<script>
(async () => {{
  const out = document.getElementById("result");
  const results = {{}};
  try {{
    const diagrams = JSON.parse(document.getElementById("diagrams").textContent);
    mermaid.initialize({{ startOnLoad: false, securityLevel: "strict" }});
    let i = 0;
    for (const [name, text] of Object.entries(diagrams)) {{
      try {{
        await mermaid.parse(text);
        const {{ svg }} = await mermaid.render("diagram" + i++, text);
        const doc = document.createElement("div");  // HTML parsing: labels hold <br>
        doc.innerHTML = svg;
        const actors = [...doc.querySelectorAll("text.actor")].map((t) => t.textContent);
        results[name] = {{ ok: true, nodes: doc.querySelectorAll("g.node").length,
                          edges: doc.querySelectorAll("path.flowchart-link").length,
                          actors: [...new Set(actors)], size: svg.length }};
      }} catch (e) {{
        results[name] = {{ ok: false, error: String((e && e.message) || e) }};
      }}
    }}
  }} catch (e) {{
    results["(page)"] = {{ ok: false, error: String((e && e.message) || e) }};
  }}
  out.setAttribute("data-results", JSON.stringify(results));
  out.setAttribute("data-state", "done");
}})();
</script></body></html>
"""


class _Attr(HTMLParser):
    """Finds the attributes of the element with id="result"."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if dict(attrs).get("id") == "result":
            self.attrs = dict(attrs)


def mermaid_results(browser: Browser, tmp_path: Path, diagrams: dict[str, str]) -> dict[str, dict]:
    """Parse and render each of ``diagrams`` (name → Mermaid text) with the pinned
    mermaid in Chromium: name → {ok, error} or {ok, nodes, edges, actors, size}."""
    payload = json.dumps(diagrams).replace("</", "<\\/")
    page = tmp_path / "mermaid.html"
    page.write_text(PAGE.format(mermaid=browser.mermaid_js.as_uri(), diagrams=payload), "utf-8")
    parser = _Attr()
    parser.feed(browser.run(page, "--dump-dom", budget_ms=20000))
    assert parser.attrs.get("data-state") == "done", "the page script did not finish"
    results: dict[str, dict] = json.loads(parser.attrs["data-results"] or "{}")
    return results
