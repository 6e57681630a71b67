"""Real Mermaid in headless Chromium, and a screenshot of the HTML report.

One page parses and renders every example's flowchart and sequence diagram with the
pinned mermaid package and writes the outcome into a DOM attribute, which
``--dump-dom`` brings back. Skipped (with the install command) only outside CI.
"""

from __future__ import annotations

import json
import struct
from html.parser import HTMLParser
from pathlib import Path

from meshc.render import render
from meshc.render.live import GroupStats, LiveStats
from render_support import EXAMPLES, Browser, example_core

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


def _mermaid_results(browser: Browser, tmp_path: Path, diagrams: dict[str, str]) -> dict[str, dict]:
    payload = json.dumps(diagrams).replace("</", "<\\/")
    page = tmp_path / "mermaid.html"
    page.write_text(PAGE.format(mermaid=browser.mermaid_js.as_uri(), diagrams=payload), "utf-8")
    parser = _Attr()
    parser.feed(browser.run(page, "--dump-dom", budget_ms=20000))
    assert parser.attrs.get("data-state") == "done", "the page script did not finish"
    results: dict[str, dict] = json.loads(parser.attrs["data-results"] or "{}")
    return results


def test_every_example_renders_in_mermaid(browser: Browser, tmp_path: Path) -> None:
    diagrams = {}
    for path in EXAMPLES:
        core = example_core(path)
        diagrams[f"{path.stem}:mermaid"] = str(render(core, "mermaid"))
        diagrams[f"{path.stem}:sequence"] = str(render(core, "sequence"))
    core = example_core(EXAMPLES[0])
    some = sorted(core.streams)[0]
    live = LiveStats(
        lengths={some: 12},
        groups={(some, r): GroupStats(lag=None, pending=3) for r in core.agents},
        dead={sorted(core.agents)[0]: 2},
    )
    diagrams["live"] = str(render(core, "mermaid", live=live))
    results = _mermaid_results(browser, tmp_path, diagrams)
    failed = {k: v["error"] for k, v in results.items() if not v["ok"]}
    assert not failed, failed
    assert set(results) == set(diagrams)
    for path in EXAMPLES:
        core = example_core(path)
        flow = results[f"{path.stem}:mermaid"]
        assert flow["nodes"] == len(core.agents) + len(core.streams), flow
        edges = sum(len(a.reads) + len(a.writes) for a in core.agents.values())
        assert flow["edges"] == edges, flow
        seq = results[f"{path.stem}:sequence"]
        assert {*core.agents, *core.streams} <= set(seq["actors"]), seq


def test_mermaid_reports_a_broken_diagram(browser: Browser, tmp_path: Path) -> None:
    """The harness itself: a syntax error must come back as an error, not as a pass."""
    results = _mermaid_results(browser, tmp_path, {"broken": "flowchart LR\n  a[[x --> \n"})
    assert results["broken"]["ok"] is False
    assert "error" in results["broken"]["error"].lower()


def test_html_report_screenshot(browser: Browser, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(str(render(example_core(EXAMPLES[0]), "html")), "utf-8")
    shot = tmp_path / "report.png"
    browser.run(report, f"--screenshot={shot}", "--window-size=1280,1600", budget_ms=3000)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1600)
    assert len(data) > 50_000, "the screenshot looks blank"
