"""The one module that writes generated files.

``render_package`` turns a core mesh into {relative path: bytes}; Python files go
through the pinned formatter (ruff, a dependency of meshc) so the bytes are the
same on every run and pass ``ruff format --check``. ``write_package`` replaces the
package folder's generated files; ``diff_package`` shows what is stale.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
from meshc.codegen.context import MeshCtx, build_context
from meshc.core import CoreMesh

TEMPLATES = Path(__file__).parent / "templates"
RUFF_ARGS = ["format", "--isolated", "--line-length", "100", "--target-version", "py311"]


class CodegenError(Exception):
    """Raised when the generated code cannot be produced (e.g. the formatter is missing)."""


def template_environment(
    folder: Path = TEMPLATES, filters: dict[str, Any] | None = None
) -> jinja2.Environment:
    """The one way templates are loaded: strict (an unknown name fails), no escaping,
    whitespace kept as written; ``filters`` adds the literal-making filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(filters or {})
    return env


def _environment() -> jinja2.Environment:
    return template_environment(TEMPLATES)


def _ruff() -> str:
    candidate = Path(sys.executable).parent / "ruff"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ruff")
    if found:
        return found
    try:
        from ruff.__main__ import find_ruff_bin  # type: ignore[import-untyped]

        return str(find_ruff_bin())
    except Exception as err:  # noqa: BLE001 - any failure means no formatter
        raise CodegenError("the formatter `ruff` is not installed: pip install ruff") from err


def format_python(files: dict[str, str]) -> dict[str, str]:
    """Format each Python source with the pinned ruff (one process per file, via stdin)."""
    ruff = _ruff()
    out = {}
    for name, text in files.items():
        proc = subprocess.run(
            [ruff, *RUFF_ARGS, "--stdin-filename", name, "-"],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise CodegenError(f"formatting {name} failed: {proc.stderr.decode(errors='replace')}")
        out[name] = proc.stdout.decode("utf-8")
    return out


def safe_path_text(path: str) -> str:
    """A source path as printable one-line text (a newline in a file name stays inert)."""
    return json.dumps(path, ensure_ascii=False)[1:-1]


def render_package(core: CoreMesh, source_path: str, raw: bytes, mermaid: str) -> dict[str, bytes]:
    ctx: MeshCtx = build_context(core, safe_path_text(source_path), raw, mermaid)
    env = _environment()
    python: dict[str, str] = {
        "__init__.py": env.get_template("init.py.j2").render(ctx=ctx),
        "__main__.py": env.get_template("main.py.j2").render(ctx=ctx),
        "models.py": env.get_template("models.py.j2").render(ctx=ctx),
        "topology.py": env.get_template("topology.py.j2").render(ctx=ctx),
        "acl.py": env.get_template("acl.py.j2").render(ctx=ctx),
        "agents/__init__.py": env.get_template("agents_init.py.j2").render(ctx=ctx),
    }
    agent_template = env.get_template("agent.py.j2")
    for agent in ctx.agents:
        python[f"agents/{agent.module}.py"] = agent_template.render(ctx=ctx, agent=agent)
    files = {name: text.encode("utf-8") for name, text in format_python(python).items()}
    files["README.md"] = env.get_template("README.md.j2").render(ctx=ctx).encode("utf-8")
    return dict(sorted(files.items()))


def _existing(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out


def diff_package(folder: Path, files: dict[str, bytes]) -> str:
    """A unified diff from what is on disk to what compile would write ('' when fresh)."""
    have = _existing(folder)
    chunks: list[str] = []
    for name in sorted(set(have) | set(files)):
        old = have.get(name, b"").decode("utf-8", errors="replace").splitlines(keepends=True)
        new = files.get(name, b"").decode("utf-8", errors="replace").splitlines(keepends=True)
        if old != new:
            chunks.extend(
                difflib.unified_diff(old, new, f"a/{folder.name}/{name}", f"b/{folder.name}/{name}")
            )
    return "".join(chunks)


def write_file(target: Path, data: bytes, *, parents: bool = True) -> None:
    """Write one file atomically (a temporary file beside it, then a rename): a reader
    never sees half of it, and a failed write leaves the old one. Every file meshc
    writes for a user goes through here (packages, diagrams, the schema).
    ``parents=False`` (a single output file a user named) makes a missing folder an
    error rather than creating it: a typo in a path should not make folders."""
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_package(folder: Path, files: dict[str, bytes]) -> list[str]:
    """Write the files, remove generated files that are no longer produced; changed names."""
    have = _existing(folder)
    changed = []
    for name in sorted(set(have) - set(files)):
        (folder / name).unlink()
        changed.append(name)
    for name, data in files.items():
        if have.get(name) == data:
            continue
        write_file(folder / name, data)
        changed.append(name)
    return changed
