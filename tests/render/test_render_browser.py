"""Real Mermaid in headless Chromium, and a screenshot of the HTML report.

One page parses and renders every example's flowchart and sequence diagram with the
pinned mermaid package and writes the outcome into a DOM attribute, which
``--dump-dom`` brings back. Skipped (with the install command) only outside CI.
"""

from __future__ import annotations

import struct
from pathlib import Path

from meshc.render import render
from meshc.render.live import GroupStats, LiveStats
from render_support import (
    EXAMPLES,
    Browser,
    example_core,
    mermaid_results,
    sequence_participants,
)


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
        groups={(some, r): GroupStats(lag=7, pending=3) for r in core.agents},
        dead={sorted(core.agents)[0]: 2},
    )
    diagrams["live"] = str(render(core, "mermaid", live=live))
    results = mermaid_results(browser, tmp_path, diagrams)
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
        assert sequence_participants(core) <= set(seq["actors"]), seq


def test_mermaid_reports_a_broken_diagram(browser: Browser, tmp_path: Path) -> None:
    """The harness itself: a syntax error must come back as an error, not as a pass."""
    results = mermaid_results(browser, tmp_path, {"broken": "flowchart LR\n  a[[x --> \n"})
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
