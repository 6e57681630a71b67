"""A mesh file made ready to test: validated, compiled, its handlers imported.

Compiling goes through the same cache as ``meshc run`` (``build_cached``), so the
tests exercise the generated topology and models, not a second reading of the YAML.
Importing user code can fail in any way; each agent whose handler cannot be used gets
a *problem* (a sentence for the report) instead of stopping the whole run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshc.api import Analysis, MeshError, analyze_file
from meshc.codegen.build import build_cached
from meshc.core import CoreMesh
from meshc.runtime.builtins import BUILTINS, resolve_handler
from meshc.runtime.errors import ConfigError
from meshc.runtime.spec import AgentSpec, MeshSpec

Handler = Callable[..., Any]


@dataclass
class LoadedMesh:
    """A valid mesh: its core form, the compiled spec, and a handler per reading agent."""

    path: str
    analysis: Analysis
    core: CoreMesh
    spec: MeshSpec
    handlers: dict[str, Handler] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def load(path: str, folder: Path | None = None) -> LoadedMesh:
    """Validate and compile ``path`` (cache under ``folder``/.meshc/build, default the
    working folder) and import its handlers. MeshError when the file is invalid,
    OSError when it cannot be read."""
    analysis = analyze_file(path)
    if not analysis.ok or analysis.core is None:
        raise MeshError(analysis)
    spec = build_cached(path, folder).load_spec()
    mesh = LoadedMesh(path, analysis, analysis.core, spec)
    importable(Path.cwd())
    for name, agent in spec.agents.items():
        if not agent.reads:
            continue
        found = handler_for(agent)
        if isinstance(found, str):
            mesh.problems[name] = found
        else:
            mesh.handlers[name] = found
    return mesh


def importable(folder: Path) -> None:
    """Handlers are named relative to the project folder, as ``meshc run`` names them."""
    if str(folder) not in sys.path and os.fspath(folder) not in ("", "."):
        sys.path.insert(1, str(folder))


def handler_for(agent: AgentSpec) -> Handler | str:
    """The callable the worker would run for ``agent``, or why there is none."""
    ref = agent.handler
    if ref == "llm":
        return (
            "uses the built-in `llm` handler, which calls a model server; "
            "test it with a stub (`meshc_mesh(path, handlers={...})`)"
        )
    if not ref or ref in BUILTINS:
        try:
            return resolve_handler(agent, None)
        except ConfigError as err:
            return str(err)
    module, _, attr = ref.partition(":")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            target = getattr(importlib.import_module(module), attr)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # user code may raise anything at import, SystemExit too
        return f"handler `{ref}` cannot be loaded ({type(err).__name__}: {err})"
    if not callable(target):
        return f"handler `{ref}` is a {type(target).__name__}, not a function"
    return target  # type: ignore[no-any-return]
