"""docs/reference/ is what docs/gen.py writes; each diagnostic example triggers its code;
the site's navigation lists every command page; the site builds with --strict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from meshc import codes
from meshc.api import analyze_file
from meshc.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "reference" / "diagnostics" / "examples"
REFRESH = "python docs/gen.py"


def test_the_generated_pages_are_fresh() -> None:
    done = subprocess.run(
        [sys.executable, "docs/gen.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\nrefresh them with: {REFRESH}"


@pytest.mark.parametrize("code", sorted(codes.REGISTRY))
def test_each_example_triggers_its_code(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the page says: ``meshc validate [--resolve] MESHNNN.yaml`` in the examples folder."""
    path = EXAMPLES / f"{code}.yaml"
    assert path.is_file(), f"no example for {code}: {REFRESH}"
    monkeypatch.chdir(EXAMPLES)  # the MESH30x ones import the `handlers` package there
    analysis = analyze_file(path.name, resolve=code.startswith("MESH3"))
    reported = {d.code for d in analysis.diagnostics}
    assert code in reported, f"{path.name} reports {sorted(reported)}"


def test_the_site_lists_every_command_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = {line.split(": ")[-1].strip() for line in nav.splitlines() if "commands/" in line}
    pages = {f"reference/commands/{name}.md" for name in COMMANDS}
    assert pages <= listed, f"add to mkdocs.yml's nav: {sorted(pages - listed)}"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """Broken links, missing pages, an API the docstrings cannot be read from: all fail."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed: the test extra brings the docs extra")
        pytest.skip("the docs extra is not installed: pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="meshc.validate"' in api and "Every check of" in api


def test_the_nav_names_only_pages_that_exist() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return []

    missing = [p for p in pages(config["nav"]) if not (ROOT / "docs" / p).is_file()]
    assert not missing
