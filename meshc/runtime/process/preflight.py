"""Before a compiled mesh starts: does every agent's handler import?

A handler that cannot be imported does not fail once: each worker dies at start, the
supervisor restarts it, and the terminal fills with ImportError tracebacks until
someone stops it. ``python -m <package>`` checks every handler first and reports each
one that does not resolve on one line (code MESH301, as ``meshc validate --resolve``
names it), so nothing starts. The generated package must not import the compiler,
so this is the runtime's own small resolver: import the module, find the function,
see that it can be called.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from types import ModuleType

from meshc.runtime.spec import MeshSpec

CODE = "MESH301"


def unresolved_handlers(mesh: MeshSpec) -> list[str]:
    """One line per agent whose handler does not resolve, in agent-name order.

    Built-ins (``fanout``, ``merge``, ``llm``) and producers (no handler) are skipped;
    each module is imported once however many agents share it.
    """
    imported: dict[str, ModuleType | BaseException] = {}
    problems = []
    for name in sorted(mesh.agents):
        handler = mesh.agents[name].handler
        module, sep, attr = handler.partition(":")
        if not sep:
            continue
        if module not in imported:
            imported[module] = _import(module)
        problem = _problem(imported[module], module, attr)
        if problem:
            problems.append(f"agent {name}: handler {handler}: {problem} [{CODE}]")
    return problems


def _import(module: str) -> ModuleType | BaseException:
    """The module, or what importing it raised (user code may raise anything)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return importlib.import_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # SystemExit included: the check must report, not exit
        return err


def _problem(found: ModuleType | BaseException, module: str, attr: str) -> str | None:
    if isinstance(found, BaseException):
        fix = "; run from the folder that holds its package, or add that folder to PYTHONPATH"
        missing = isinstance(found, ModuleNotFoundError) and module.startswith(found.name or "?")
        return f"module {module} cannot be imported ({_describe(found)})" + (fix if missing else "")
    try:
        target = getattr(found, attr)
    except KeyboardInterrupt:
        raise
    except BaseException:  # a module __getattr__ is user code too
        return f"module {module} has no function {attr}"
    if not callable(target):
        kind = type(target).__name__
        article = "an" if kind[:1] in "aeiou" else "a"
        return f"{module}.{attr} is {article} {kind}, not a function"
    return None


def _describe(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:  # a user exception whose __str__ raises
        text = ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
