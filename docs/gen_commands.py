"""One reference page per command, made from meshc's own argument parsers.

The page of ``meshc X`` is what ``meshc X --help`` says, in Markdown: the usage, the
description (the command module's docstring), every option with its help, default
and choices, and each subcommand in turn. Help and docs cannot disagree, because
both come from the same parser.
"""

from __future__ import annotations

import argparse
import os
import re

from meshc.cli import COMMANDS, build_parser

WIDTH = "88"  # argparse wraps the usage to the terminal: a fixed width, the same bytes
_ROLE = re.compile(r":[a-z]+:`~?([^`]*)`")
_LITERAL = re.compile(r"``([^`]*)``")


def markdown(text: str) -> str:
    """Docstring markup as Markdown: ``x`` and :func:`x` become `x`."""
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", text))


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return found[0] if found else None


def _summaries(action: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, str]:
    return {a.dest: a.help or "" for a in action._choices_actions}


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        metavar = " " + (action.metavar or action.dest.upper())
        if action.choices and not action.metavar:
            metavar = " {" + ",".join(str(c) for c in action.choices) + "}"
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def _option(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    line = f"- {_flags(action)}"
    if text:
        line += ": " + markdown(text)
    if action.choices and action.metavar and not isinstance(action, argparse._SubParsersAction):
        line += " (one of " + ", ".join(f"`{c}`" for c in action.choices) + ")"
    return line


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for group in parser._action_groups:
        shown = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        ]
        if not shown:
            continue
        title = (group.title or "options").capitalize()
        lines += ["", f"**{title}**", "", *(_option(parser, a) for a in shown)]
    return lines


def _section(parser: argparse.ArgumentParser, level: int) -> list[str]:
    """Usage, description and options of one parser, then its subcommands."""
    lines = ["```text", parser.format_usage().strip(), "```"]
    if parser.description:
        raw = parser.formatter_class.__name__ == "_RawFormatter"
        body = parser.description.strip()
        lines += ["", "```text", body, "```"] if raw else ["", markdown(body)]
    lines += _options(parser)
    sub = _subparsers(parser)
    if sub is not None:
        summaries = _summaries(sub)
        for name, child in sub.choices.items():
            lines += ["", f"{'#' * level} `{child.prog}`", ""]
            if summaries.get(name):
                lines += [markdown(summaries[name]).capitalize() + ".", ""]
            lines += _section(child, level + 1)
    return lines


def command_pages() -> dict[str, bytes]:
    """{"commands/<name>.md": page} for every command, and an index of them all."""
    os.environ["COLUMNS"] = WIDTH
    top = build_parser()
    sub = _subparsers(top)
    assert sub is not None
    summaries = _summaries(sub)
    pages: dict[str, bytes] = {}
    index = [
        "# Commands",
        "",
        "Every page here is made from the command's own `--help` (`python docs/gen.py`),",
        "so the two say the same.",
        "",
        "| command | does |",
        "|---|---|",
    ]
    for name in COMMANDS:
        parser = sub.choices[name]
        lines = [f"# meshc {name}", "", markdown(summaries[name]).capitalize() + ".", ""]
        lines += _section(parser, 2)
        pages[f"commands/{name}.md"] = ("\n".join(lines) + "\n").encode("utf-8")
        index.append(f"| [`meshc {name}`]({name}.md) | {markdown(summaries[name])} |")
    pages["commands/index.md"] = ("\n".join(index) + "\n").encode("utf-8")
    return pages
