"""Shell completion scripts for ``meshc``, made from its argparse parsers.

The parsers are the one description of the command line, so the scripts are derived
from them rather than written by hand: a new command or option completes as soon as
it is registered. :func:`commands` reads the parsers into plain records; one module
per shell (``bash``, ``zsh``, ``fish``) turns the records into a script. Every script
works out where the cursor is the same way: it walks the words typed so far, follows
subcommands (``dlq`` then ``list``), skips the value of an option that takes one, and
then offers the current command's options, subcommands, choices or files.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

# Metavars whose values are paths: the shell completes files for them.
FILE_METAVARS = frozenset({"FILE", "PATH", "DIR"})
SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True)
class Option:
    """One option: its spellings, a short help, and what its value is (if it takes one)."""

    names: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...] = ()
    files: bool = False


@dataclass(frozen=True)
class Positional:
    """One positional argument; ``many`` when it repeats (``FILE…``)."""

    name: str
    help: str
    choices: tuple[str, ...] = ()
    files: bool = False
    many: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Command:
    """A command or subcommand: ``path`` is ``()`` for ``meshc`` itself, ``("dlq",
    "list")`` for ``meshc dlq list``; ``subcommands`` are (name, help) pairs."""

    path: tuple[str, ...]
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        """The path as the scripts spell it: ``""``, ``"dlq list"``."""
        return " ".join(self.path)

    @property
    def valued(self) -> list[str]:
        """Every spelling of the options that take a value (whose next word to skip)."""
        return [name for o in self.options if o.takes_value for name in o.names]


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command under ``parser``, itself first, depth first in declaration order."""
    out: list[Command] = []
    stack: list[tuple[tuple[str, ...], str, argparse.ArgumentParser]] = [((), "", parser)]
    while stack:
        path, help_text, current = stack.pop()
        command, children = _command(path, help_text, current)
        out.append(command)
        stack.extend(reversed(children))
    return out


def _command(
    path: tuple[str, ...], help_text: str, parser: argparse.ArgumentParser
) -> tuple[Command, list[tuple[tuple[str, ...], str, argparse.ArgumentParser]]]:
    options, positionals = [], []
    subcommands: list[tuple[str, str]] = []
    children = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                subcommands.append((name, short(helps.get(name, ""))))
                children.append(((*path, name), short(helps.get(name, "")), child))
        elif action.help is argparse.SUPPRESS:
            continue
        elif action.option_strings:
            options.append(_option(action))
        else:
            positionals.append(_positional(action))
    command = Command(path, help_text, tuple(options), tuple(positionals), tuple(subcommands))
    return command, children


def _option(action: argparse.Action) -> Option:
    takes_value = action.nargs != 0
    metavar = str(action.metavar or action.dest).upper()
    return Option(
        tuple(action.option_strings),
        short(action.help or ""),
        takes_value,
        tuple(str(c) for c in action.choices or ()) if takes_value else (),
        takes_value and not action.choices and metavar in FILE_METAVARS,
    )


def _positional(action: argparse.Action) -> Positional:
    metavar = str(action.metavar or action.dest)
    return Positional(
        metavar,
        short(action.help or ""),
        tuple(str(c) for c in action.choices or ()),
        not action.choices and metavar.upper() in FILE_METAVARS,
        action.nargs in ("*", "+"),
        action.nargs in ("*", "?"),
    )


_MARKUP = re.compile(r"``|:[a-z]+:`~?|`")


def short(text: str, limit: int = 72) -> str:
    """A help text as a completion menu shows it: one line, its first clause, no markup."""
    text = " ".join(_MARKUP.sub("", text).split())
    text = re.split(r"(?<=[a-z)])[.;] ", text, maxsplit=1)[0]
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script of ``shell`` (one of :data:`SHELLS`)."""
    from meshc.completion import bash, fish, zsh

    makers = {"bash": bash.script, "zsh": zsh.script, "fish": fish.script}
    return makers[shell](commands(parser))
