"""Text formats of every example, byte for byte against ``golden/``; and determinism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from meshc.api import analyze_text
from meshc.render import render
from render_support import EXAMPLE_IDS, EXAMPLES, example_core

SUFFIX = {
    "mermaid": "mmd",
    "sequence": "seq.mmd",
    "dot": "dot",
    "text": "txt",
    "asyncapi": "asyncapi.yaml",
}


@pytest.mark.parametrize("fmt", sorted(SUFFIX))
@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_golden(path: Path, fmt: str, golden: Callable[[str, str], None]) -> None:
    out = render(example_core(path), fmt)
    assert isinstance(out, str)
    golden(f"{path.stem}.{SUFFIX[fmt]}", out)


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_ascii_tree_is_plain_ascii(path: Path, golden: Callable[[str, str], None]) -> None:
    out = render(example_core(path), "text", ascii=True)
    assert isinstance(out, str)
    out.encode("ascii")
    golden(f"{path.stem}.ascii.txt", out)


def _reordered(path: Path) -> str:
    """The same mesh with every mapping's keys in reverse order.

    BaseLoader keeps every scalar a string, so YAML 1.1's ``on`` is not turned into True.
    """
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    for key in ("types", "streams", "agents", "lanes"):
        if key in data:
            data[key] = dict(reversed(list(data[key].items())))
    return yaml.safe_dump(dict(reversed(list(data.items()))), sort_keys=False)


@pytest.mark.parametrize("fmt", sorted(SUFFIX))
@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_key_order_does_not_change_the_output(path: Path, fmt: str) -> None:
    analysis = analyze_text(_reordered(path), str(path))
    assert analysis.ok and analysis.core is not None, analysis.diagnostics
    assert render(analysis.core, fmt) == render(example_core(path), fmt)
