"""Each optional extra, when missing, is named in one clear message (no traceback).

A missing package is simulated by a ``None`` in ``sys.modules``: ``import`` then raises
ImportError and ``importlib.util.find_spec`` answers None, as for a package that was
never installed. tests/packaging/test_wheel.py sees the same messages for real, in a
venv where only the wheel's required dependencies are installed.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from cli_kit import cli
from meshc import extras

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = str(ROOT / "meshes" / "pipeline.yaml")
REVIEW_LLM = str(ROOT / "meshes" / "doc_review_llm.yaml")


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` (and any loaded module under them) look uninstalled."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_the_message_names_the_extra_and_how_to_install_it() -> None:
    text = extras.message("serve", "meshc serve", ["starlette", "httpx"])
    assert text == (
        "meshc serve needs the `serve` extra (missing: starlette, httpx): "
        "pip install 'meshc[serve]'"
    )


@pytest.mark.parametrize("extra", sorted(extras.MODULES))
def test_missing_modules_sees_a_hidden_module(extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert extras.missing_modules(extra) == []
    first = extras.MODULES[extra][0]
    hide(monkeypatch, first)
    assert extras.missing_modules(extra) == [first]
    with pytest.raises(extras.MissingExtra, match=rf"meshc\[{extra}\]"):
        extras.require(extra, "this feature")


def test_serve_without_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "uvicorn")
    done = cli("serve", PIPELINE, "--no-auth")
    assert done.code == 2
    assert "meshc serve: the HTTP gateway needs the `serve` extra (missing: uvicorn)" in done.err
    assert "pip install 'meshc[serve]'" in done.err and "Traceback" not in done.err


def test_demo_serve_without_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "starlette")
    done = cli("demo", "--serve")
    assert done.code == 2
    assert "meshc demo: --serve needs the `serve` extra" in done.err
    assert "meshc[serve]" in done.err


def test_demo_with_a_model_without_the_llm_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "openai")
    done = cli("demo", "--model-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert done.code == 2
    assert "meshc demo: --model-url needs the `llm` extra (missing: openai)" in done.err
    assert "pip install 'meshc[llm]'" in done.err


def test_meshc_test_without_the_testing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "hypothesis")
    done = cli("test", PIPELINE)
    assert done.code == 2
    needs = "meshc test: property testing needs the `testing` extra (missing: hypothesis)"
    assert needs in done.err
    assert "pip install 'meshc[testing]'" in done.err


@pytest.mark.parametrize("module", ["meshc.testing.strategies", "meshc.testing.meshgen"])
def test_strategies_without_the_testing_extra(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "hypothesis")
    for loaded in ("meshc.testing.strategies", "meshc.testing.meshgen"):
        monkeypatch.delitem(sys.modules, loaded, raising=False)  # imported afresh
    with pytest.raises(extras.MissingExtra, match=r"pip install 'meshc\[testing\]'"):
        importlib.import_module(module)


def test_llm_agents_without_the_llm_extra_are_mesh301(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "openai")
    done = cli("validate", "--resolve", "--format", "json", REVIEW_LLM)
    assert done.code == 1
    found = [d for d in json.loads(done.out)["diagnostics"] if d["code"] == "MESH301"]
    lenses = {"grammar", "clarity", "tone", "structure"}
    assert {d["message"].split("`")[3] for d in found} == lenses
    assert all("pip install 'meshc[llm]'" in d["message"] for d in found)


def test_llm_agents_with_the_llm_extra_resolve() -> None:
    done = cli("validate", "--resolve", REVIEW_LLM)
    assert done.code == 0, done.err
    assert "MESH301" not in done.out + done.err
