"""Handler checks (MESH301-303), run only with ``--resolve`` because they import user code.

Importing a module runs it, and user code can raise anything (SystemExit included)
or print: every import is fenced (``BaseException`` but KeyboardInterrupt becomes a
MESH301, stdout goes to stderr so that ``--format json`` stays parseable), the
current directory is importable only while resolving, and the user modules that
resolving loaded are unloaded afterwards, so two validations in one process never
see each other's code. The coupling rule (MESH303) reads the handler module's
source with ``ast``: what the file says it imports, not what happens to be loaded.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from meshc import codes, extras
from meshc.core import CoreAgent, CoreMesh
from meshc.diagnostics import Diagnostic, Span
from meshc.model import HANDLER_PATTERN
from meshc.source import Source

BUILTINS = frozenset({"fanout", "merge", "llm"})
# Top-level packages of Redis clients: a handler that imports one bypasses the mesh.
REDIS_CLIENTS = frozenset(
    {"redis", "aioredis", "valkey", "glide", "coredis", "walrus", "rediscluster", "redis_om",
     "hiredis", "pottery", "asyncio_redis", "tredis", "fakeredis"}
)  # fmt: skip


@dataclass
class _Binding:
    """One handler string and the agents bound to it at one place in the file."""

    handler: str
    module: str
    attr: str
    span: Span
    agents: list[str] = field(default_factory=list)

    @property
    def who(self) -> str:
        noun = "agent" if len(self.agents) == 1 else "agents"
        return f"{noun} " + ", ".join(f"`{a}`" for a in self.agents)


@dataclass
class _Loaded:
    """The outcome of importing one module: the module, or the failure."""

    module: ModuleType | None
    error: BaseException | None = None


def check_handlers(core: CoreMesh, source: Source) -> list[Diagnostic]:
    """MESH301 (import), MESH302 (signature), MESH303 (coupling) for every handler."""
    bindings = _bindings(core, source)
    diags = _llm_extra(core, source)
    if not bindings:
        return diags
    modules = sorted({b.module for b in bindings})
    with _importable_cwd({m.partition(".")[0] for m in modules}):
        loaded = {name: _import(name) for name in modules}
        diags.extend(d for b in bindings for d in _check_binding(b, loaded[b.module]))
        diags.extend(_coupling(core, source, loaded))
    return diags


def _llm_extra(core: CoreMesh, source: Source) -> list[Diagnostic]:
    """MESH301 for each ``handler: llm`` agent when the ``llm`` extra is not installed:
    its workers would fail on importing the model client."""
    missing = extras.missing_modules("llm")
    if not missing:
        return []
    return [
        codes.HANDLER_IMPORT.at(
            _handler_span(source, agent),
            extras.message("llm", f"handler `llm` of agent `{name}`", missing),
            help_text=f"install the extra: {extras.install_hint('llm')}",
        )
        for name, agent in core.agents.items()
        if agent.handler == "llm"
    ]


def _bindings(core: CoreMesh, source: Source) -> list[_Binding]:
    """Agents grouped by (handler, place): the lanes of a family share one line."""
    out: dict[tuple[str, Span], _Binding] = {}
    for name, agent in core.agents.items():
        parts = _split(agent.handler)
        if parts is None:
            continue
        span = _handler_span(source, agent)
        assert agent.handler is not None
        key = (agent.handler, span)
        if key not in out:
            out[key] = _Binding(agent.handler, parts[0], parts[1], span)
        out[key].agents.append(name)
    return list(out.values())


def _split(handler: str | None) -> tuple[str, str] | None:
    if handler is None or handler in BUILTINS:
        return None
    if not re.fullmatch(HANDLER_PATTERN, handler):
        return None  # a lane template that expands badly: already a MESH002
    module, _, attr = handler.partition(":")
    return module, attr


def _handler_span(source: Source, agent: CoreAgent) -> Span:
    return source.span((*agent.path, "handler"))


# ----------------------------------------------------------------------------- importing


@contextlib.contextmanager
def _importable_cwd(packages: set[str]) -> Iterator[None]:
    """The current directory on sys.path; user modules loaded meanwhile are unloaded after.

    Only new modules of the handlers' own top-level packages whose files lie under the
    current directory are unloaded: third-party packages (some cannot be loaded twice)
    and meshc itself stay.
    """
    cwd = os.getcwd()
    saved_path = list(sys.path)
    before = set(sys.modules)
    sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            top = name.partition(".")[0]
            if top in packages and top != "meshc" and _under(sys.modules.get(name), cwd):
                del sys.modules[name]


def _under(module: object, folder: str) -> bool:
    # Read the module's dict, not its attributes: a module __getattr__ is user code.
    if not isinstance(module, ModuleType):
        return True  # user code put an object in sys.modules under its own name
    found = vars(module)
    places = [found.get("__file__"), *(found.get("__path__") or [])]
    prefix = os.path.join(folder, "")
    return any(isinstance(p, str) and os.path.abspath(p).startswith(prefix) for p in places)


def _import(name: str) -> _Loaded:
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return _Loaded(importlib.import_module(name))
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # user code can raise anything, SystemExit included
        return _Loaded(None, err)


def _describe(err: BaseException) -> str:
    """``Type: text`` of an exception that user code raised (its __str__ may raise too)."""
    try:
        text = f"exit status {err.code!r}" if isinstance(err, SystemExit) else str(err)
    except Exception:
        text = ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _raised_at(err: BaseException) -> list[tuple[Span, str]]:
    """Where user code raised: the innermost frame outside importlib's machinery."""
    if isinstance(err, SyntaxError) and err.filename and err.lineno:
        col = err.offset or 1
        return [(Span(err.filename, err.lineno, col, err.lineno, col + 1), "the syntax error")]
    machinery = (os.path.abspath(__file__), os.path.dirname(importlib.__file__))
    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if not f.filename.startswith("<frozen")
        and not os.path.abspath(f.filename).startswith(machinery)
    ]
    if not frames or frames[-1].lineno is None:
        return []
    last = frames[-1]
    line = last.lineno or 1
    return [(Span(last.filename, line, 1, line, 1), f"{type(err).__name__} raised here")]


# ----------------------------------------------------------------------------- MESH301/302


def _check_binding(binding: _Binding, loaded: _Loaded) -> list[Diagnostic]:
    if loaded.module is None:
        assert loaded.error is not None
        return [_unimportable(binding, loaded.error)]
    try:
        target = getattr(loaded.module, binding.attr)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # a module __getattr__ is user code too
        return [_missing_attr(binding, loaded.module, err)]
    problem = _signature_problem(target)
    if problem is None:
        return []
    return [
        codes.HANDLER_SIGNATURE.at(
            binding.span,
            f"handler `{binding.handler}` of {binding.who} {problem}; it is called as "
            "`handler(payload, ctx)`",
            help_text=f"define it as `def {binding.attr}(payload, ctx):` "
            "(or `async def`); extra parameters need defaults",
        )
    ]


def _unimportable(binding: _Binding, err: BaseException) -> Diagnostic:
    missing = isinstance(err, ModuleNotFoundError) and err.name is not None
    if missing and binding.module.startswith(str(getattr(err, "name", ""))):
        fix = (
            f"check the spelling of `{binding.module}`, or run from the folder that holds "
            "its package (or add that folder to PYTHONPATH)"
        )
    else:
        fix = f"fix the error that importing `{binding.module}` raises"
    return codes.HANDLER_IMPORT.at(
        binding.span,
        f"handler `{binding.handler}` of {binding.who}: module `{binding.module}` cannot be "
        f"imported ({_describe(err)})",
        help_text=fix,
        related=_raised_at(err),
    )


def _missing_attr(binding: _Binding, module: ModuleType, err: BaseException) -> Diagnostic:
    names = vars(module) if isinstance(module, ModuleType) else {}
    public = sorted(
        n
        for n, v in names.items()
        if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == binding.module
    )
    fix = f"functions in `{binding.module}`: " + ", ".join(f"`{n}`" for n in public)
    if not public:
        fix = f"define `{binding.attr}` in `{binding.module}`"
    return codes.HANDLER_IMPORT.at(
        binding.span,
        f"handler `{binding.handler}` of {binding.who}: module `{binding.module}` has no "
        f"attribute `{binding.attr}` ({_describe(err)})",
        help_text=fix,
    )


def _signature_problem(target: Any) -> str | None:
    """Why ``target(payload, ctx)`` cannot be called, or None when it can."""
    if not callable(target):
        kind = type(target).__name__
        return f"is {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not a function"
    try:
        signature = inspect.signature(target)
    except KeyboardInterrupt:
        raise
    except BaseException:  # no signature to read (some builtins, odd __signature__)
        return None
    try:
        signature.bind(object(), object())
    except TypeError as err:
        try:
            shown = f"; its signature is {signature}"
        except Exception:  # an annotation's repr is user code
            shown = ""
        return f"cannot take two positional arguments ({err}{shown})"
    return None


# ----------------------------------------------------------------------------- MESH303


def _coupling(core: CoreMesh, source: Source, loaded: dict[str, _Loaded]) -> Iterator[Diagnostic]:
    """Each handler module's imports against other agents' modules and Redis clients.

    One diagnostic per (module, what it reaches), at the first handler line bound to
    the module; the import's own line is the note.
    """
    owners: dict[str, list[str]] = {}
    for name, agent in core.agents.items():
        parts = _split(agent.handler)
        if parts is not None:
            owners.setdefault(parts[0], []).append(name)
    for module, outcome in sorted(loaded.items()):
        path = _source_file(outcome.module) if outcome.module is not None else None
        if path is None:
            continue
        span = min(_handler_span(source, core.agents[a]) for a in owners[module])
        seen: set[str] = set()
        for names, line in _imports(path, module):
            found = _violation(owners, module, names)
            if found is None or found.reaches in seen:
                continue
            seen.add(found.reaches)
            note = (Span(path, line, 1, line, 1), f"`{module}` imports `{found.imported}` here")
            yield codes.HANDLER_COUPLING.at(
                span, found.message, help_text=found.fix, related=[note]
            )


@dataclass(frozen=True)
class _Violation:
    reaches: str  # a Redis client's package, or another agent's handler module
    imported: str  # the name as the import statement gives it
    message: str
    fix: str


def _violation(owners: dict[str, list[str]], module: str, names: list[str]) -> _Violation | None:
    """What one import statement reaches past the module's boundary, if anything."""
    who = ", ".join(f"`{a}`" for a in sorted(owners[module]))
    for imported in names:
        client = imported.partition(".")[0]
        if client in REDIS_CLIENTS:
            return _Violation(
                client,
                imported,
                f"handler module `{module}` (of {who}) imports the Redis client "
                f"`{client}`; agents reach streams only through the runtime",
                "return the output (or call `ctx.emit`) and let the runtime read and write streams",
            )
    for imported in names:
        if imported in owners and imported != module:
            others = ", ".join(f"`{a}`" for a in sorted(owners[imported]))
            return _Violation(
                imported,
                imported,
                f"handler module `{module}` (of {who}) imports `{imported}`, the handler "
                f"module of {others}; agents know stream names only",
                "move what both need into a helper module that no agent is bound to, "
                f"and import that from `{module}` and `{imported}`",
            )
    return None


def _source_file(module: ModuleType) -> str | None:
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if isinstance(origin, str) and origin.endswith(".py") and os.path.isfile(origin):
        return origin
    return None


def _imports(path: str, module: str) -> list[tuple[list[str], int]]:
    """What each import statement of a source file names (absolute), with its line.

    ``from pkg import name`` names both ``pkg`` and ``pkg.name`` (it may be a
    submodule); imports under ``if TYPE_CHECKING:`` never run and are skipped;
    ``importlib.import_module("x")`` and ``__import__("x")`` with a constant count too.
    """
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return []
    package = module if os.path.basename(path) == "__init__.py" else module.rpartition(".")[0]
    found = [(_imported_names(node, package), node.lineno) for node in _runtime_nodes(tree)]
    return sorted(((names, line) for names, line in found if names), key=lambda f: f[1])


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom | ast.Call]:
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imported_names(node: ast.Import | ast.ImportFrom | ast.Call, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _absolute(node.module or "", node.level, package)
        if not base:
            return []
        return [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
    if _is_dynamic_import(node.func) and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return [first.value]
    return []


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _absolute(name: str, level: int, package: str) -> str | None:
    if level == 0:
        return name
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return None
