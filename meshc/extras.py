"""The optional extras of meshc, and the message that names one when it is missing.

A plain ``pip install meshc`` validates, compiles, draws text diagrams and runs meshes.
What only some users need is an extra: ``meshc[llm]`` (``handler: llm`` agents),
``meshc[render]`` (SVG, PNG and HTML without Debian's ``dot``), ``meshc[testing]``
(``meshc test``, the strategies and the pytest plugin) and ``meshc[serve]`` (the HTTP
gateway). A feature checks its extra before it starts, so a missing package is one
line naming the extra to install, never an ImportError from deep inside.
"""

from __future__ import annotations

import importlib.util

# extra → the top-level modules it brings (what ``find_spec`` looks for).
MODULES: dict[str, tuple[str, ...]] = {
    "llm": ("openai",),
    "testing": ("hypothesis",),
    "serve": ("starlette", "uvicorn", "httpx"),
}


class MissingExtra(ImportError):
    """A feature whose extra is not installed; the message says what to install."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'meshc[{extra}]'"


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here, in declaration order."""
    return [m for m in MODULES[extra] if importlib.util.find_spec(m) is None]


def message(extra: str, feature: str, missing: list[str]) -> str:
    """``<feature> needs the `<extra>` extra (missing: …): pip install 'meshc[<extra>]'``."""
    return (
        f"{feature} needs the `{extra}` extra (missing: {', '.join(missing)}): "
        f"{install_hint(extra)}"
    )


def problem(extra: str, feature: str) -> str | None:
    """The message for ``feature`` when ``extra`` is incomplete here, else None."""
    missing = missing_modules(extra)
    return message(extra, feature, missing) if missing else None


def require(extra: str, feature: str) -> None:
    """Raise MissingExtra (naming the extra) unless every module of ``extra`` imports."""
    found = problem(extra, feature)
    if found is not None:
        raise MissingExtra(found)
