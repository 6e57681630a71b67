"""Helpers of the command-line tests: every parser of ``meshc``, walked."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from meshc.cli import build_parser


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of every command and subcommand (``dlq list``), leaves only."""
    stack = [("", build_parser())]
    while stack:
        name, parser = stack.pop()
        children = subparsers(parser)
        if not children and name:
            yield name, parser
        stack.extend((f"{name} {child}".strip(), p) for child, p in children.items())
