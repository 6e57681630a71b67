"""``--help`` of every command: plain text (no docstring markup), paragraphs kept,
and help on every option."""

from __future__ import annotations

import re

import pytest
from meshc.cli import main, plain_text
from parsers_kit import commands

MARKUP = re.compile(r"``|:[a-z]+:`")


def test_every_help_is_plain_text() -> None:
    found = dict(commands())
    assert len(found) >= 15
    for name, parser in found.items():
        text = parser.format_help()
        assert not MARKUP.search(text), f"meshc {name} --help shows markup: {text}"


def test_the_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "validate" in out and not MARKUP.search(out)


def test_paragraphs_of_a_description_stay_apart() -> None:
    text = dict(commands())["run"].format_help()
    assert "meshc run FILE: start every agent" in text
    assert "running.\n\nThe mesh is compiled" in text


def test_every_option_and_argument_has_help() -> None:
    for name, parser in commands():
        for action in parser._actions:
            assert action.help, f"meshc {name}: {action.option_strings or action.dest} has no help"


def test_markup_is_dropped_and_the_text_kept() -> None:
    assert plain_text("``meshc run FILE``: see :func:`~meshc.x.guarded`") == (
        "meshc run FILE: see meshc.x.guarded"
    )
    assert plain_text("`single` quotes stay") == "`single` quotes stay"
