"""The walls between meshc's packages (docs/architecture.md), checked on the source.

Each rule reads every module's imports (or calls) with ``ast`` rather than importing
anything, so a rule broken anywhere fails here with the module and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "meshc"
MAX_LINES = 460

# The compiler: what reads mesh files and turns them into models, diagnostics, code.
COMPILER = ("api", "core", "model", "parse", "expand", "graph", "checks", "source",
            "typeexpr", "codes", "diagnostics", "codegen", "render", "diff")  # fmt: skip

# Where files are written, and why each may: nothing else writes to disk.
WRITERS = {
    "meshc/codegen/writer.py": "the one writer of files meshc makes for a user",
    "meshc/runtime/process/server_files.py": "the embedded server's private folder",
    "meshc/runtime/process/health.py": "the liveness heartbeat file of a worker",
    "meshc/testing/server.py": "a throw-away server's folder",
    "meshc/testing/cluster.py": "a throw-away cluster's folders",
}
WRITE_METHODS = {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir"}
WRITE_FUNCTIONS = {
    "os.replace", "os.rename", "os.remove", "os.unlink", "os.fdopen",
    "shutil.rmtree", "shutil.copy", "shutil.move", "os.mkdir", "os.makedirs",
}  # fmt: skip


def _module_names() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        names.add(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return names


MODULE_NAMES = _module_names()


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def imports(tree: ast.Module, *, runtime_only: bool = True) -> Iterator[tuple[int, str]]:
    """(line, module) of every import; those under ``if TYPE_CHECKING`` are skipped."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    for node in ast.walk(tree):
        if id(node) in skip and runtime_only:
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import mod`` imports the module ``pkg.mod`` (and runs pkg's
            # ``__init__``, which must then obey the same rules on its own)
            for a in node.names:
                full = f"{node.module}.{a.name}"
                yield node.lineno, full if full in MODULE_NAMES else node.module


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


ALL = list(modules())


# The named exceptions to wall 1, each with its reason (docs/architecture.md).
RUNTIME_EXCEPTIONS = {
    ("meshc.runtime.process.launch", "meshc.ops.metrics"): "the metrics endpoint of a "
    "supervised mesh reads the server as `meshc status` does; imported only when asked for",
}


def test_the_runtime_imports_nothing_of_the_compiler_or_the_operators_tools() -> None:
    """Generated workers import ``meshc.runtime`` only, so it must stand alone."""
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {mod}"
        for name, path, tree in ALL
        if _under(name, "meshc.runtime")
        for line, mod in imports(tree)
        if _under(mod, "meshc")
        and not _under(mod, "meshc.runtime")
        and (name, mod) not in RUNTIME_EXCEPTIONS
    ]
    assert not bad, "\n".join(bad)


def test_the_compiler_imports_no_runtime_server_code_or_commands() -> None:
    """The compiler knows records (``runtime.spec``), never servers, workers or the CLI."""
    allowed = ("meshc.runtime.spec", "meshc.runtime.errors", "meshc.runtime.keys")
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {mod}"
        for name, path, tree in ALL
        if any(_under(name, f"meshc.{c}") for c in COMPILER)
        for line, mod in imports(tree)
        if any(_under(mod, p) for p in ("meshc.ops", "meshc.commands", "meshc.gateway", "redis"))
        or (_under(mod, "meshc.runtime") and not any(_under(mod, a) for a in allowed))
    ]
    assert not bad, "\n".join(bad)


def test_render_is_pure() -> None:
    """Diagrams are functions of the model: no server, no network, no files. (The
    layout engine ``dot`` is run as a program: that is computation, not I/O here.)"""
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {mod}"
        for name, path, tree in ALL
        if _under(name, "meshc.render")
        for line, mod in imports(tree)
        if any(_under(mod, p) for p in ("redis", "socket", "httpx", "meshc.ops", "meshc.runtime"))
        and not _under(mod, "meshc.runtime.keys")  # key names: pure functions of strings
    ]
    assert not bad, "\n".join(bad)


def _writes(tree: ast.Module) -> Iterator[int]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            ast.unparse(func) in WRITE_FUNCTIONS
            or isinstance(func, ast.Attribute)
            and func.attr in WRITE_METHODS
        ):
            yield node.lineno
        elif isinstance(func, ast.Name) and func.id == "open" and len(node.args) > 1:
            mode = node.args[1]
            if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                yield node.lineno


def test_only_the_writer_and_the_operator_layer_write_files() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path, tree in ALL
        if str(path.relative_to(ROOT)) not in WRITERS and not _under(name, "meshc.ops")
        for line in _writes(tree)
    ]
    assert not bad, "these write files; route them through meshc.codegen.writer:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    names = {name for name, _, _ in ALL}
    for name, _, tree in ALL:
        deps = set()
        for _, mod in imports(tree):
            while mod and mod not in names:
                mod = mod.rpartition(".")[0]
            if mod and mod != name and not name.startswith(mod + "."):
                deps.add(mod)
        graph[name] = deps
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on:
                low[node] = min(low[node], index[child])
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.name))
def test_no_module_is_a_book(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines; split it"


def test_commands_share_only_their_helper_modules() -> None:
    """A command module imports no other command; they share ``common`` and ``output``."""
    shared = ("meshc.commands.common", "meshc.commands.output")
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {mod}"
        for name, path, tree in ALL
        if _under(name, "meshc.commands") and name not in shared
        for line, mod in imports(tree)
        if _under(mod, "meshc.commands") and mod not in shared and mod != "meshc.commands"
    ]
    assert not bad, "\n".join(bad)
