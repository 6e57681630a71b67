"""``meshc completion bash|zsh|fish``: print a completion script for your shell.

Commands, subcommands, options and their choices complete, and so do file names
where a command takes a mesh file or a path. The script is made from meshc's own
argument parsers, so it always matches the installed version.

bash: add ``eval "$(meshc completion bash)"`` to ~/.bashrc.

zsh: ``meshc completion zsh > "${fpath[1]}/_meshc"`` and start a new shell, or add
``source <(meshc completion zsh)`` to ~/.zshrc after ``compinit``.

fish: ``meshc completion fish > ~/.config/fish/completions/meshc.fish``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshc.completion import SHELLS


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a shell completion script", description=__doc__)
    p.add_argument("shell", metavar="SHELL", choices=SHELLS, help="bash, zsh or fish")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from meshc.cli import build_parser
    from meshc.completion import script

    sys.stdout.write(script(args.shell, build_parser()))
    return 0
