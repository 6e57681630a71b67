"""Command line: parse arguments, call the API, print, return an exit code.

Each command lives in ``meshc.commands.<name>`` with ``register(subparsers)``; the
function it sets as ``handler`` returns the exit code. Exit codes: 0 success,
1 invalid input or a failed operation, 2 usage error or a file that cannot be opened.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from meshc import __version__

COMMANDS = (
    "validate",
    "schema",
    "compile",
    "diff",
    "rollout",
    "replay",
    "render",
    "run",
    "submit",
    "tail",
    "status",
    "trace",
    "trim",
    "dlq",
    "demo",
    "server",
    "test",
    "serve",
    "completion",
)


_ROLE = re.compile(r":[a-z]+:`~?([^`]*)`")  # :func:`x`
_LITERAL = re.compile(r"``([^`]*)``")  # ``x``


def plain_text(text: str) -> str:
    """Docstring markup as terminal text: ``x`` and :func:`x` become x."""
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))


class _PlainText(argparse.HelpFormatter):
    """Command descriptions are their modules' docstrings, written for readers of the
    code: their markup is dropped from every help text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain_text(text), width, indent)

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))


class _Formatter(_PlainText):
    """Paragraphs of a description stay apart (argparse would run them into one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        paragraphs = re.split(r"\n\s*\n", text.strip())
        return "\n\n".join(fill(p, width, indent) for p in paragraphs)


class _RawFormatter(_PlainText, argparse.RawDescriptionHelpFormatter):
    """For a command that lays out its description itself: its lines kept as written."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        chosen = kwargs.get("formatter_class", _Formatter)
        raw = chosen is argparse.RawDescriptionHelpFormatter
        kwargs["formatter_class"] = _RawFormatter if raw else chosen
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of command ``only``: each command's module is
    imported to register it, and some bring in the runtime (redis, asyncio), so a
    run of one command imports that one alone and starts sooner."""
    parser = _Parser(
        prog="meshc",
        description="Validate, compile, render and run Agentic Meshes on Redis Streams.",
    )
    parser.add_argument("--version", action="version", version=f"meshc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in (only,) if only in COMMANDS else COMMANDS:
        try:
            module = importlib.import_module(f"meshc.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"meshc.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(words)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code
