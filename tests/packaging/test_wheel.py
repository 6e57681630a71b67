"""The wheel, installed in a fresh venv outside the repository, works on its own.

One wheel is built from a copy of the sources (so that the build leaves nothing in the
work tree) and installed with its required dependencies only, no extra, in a venv of
its own; every command below runs in an empty folder outside the repository. About
half a minute in all, most of it pip resolving the dependencies (from its cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("meshc", "meshes", "pyproject.toml", "setup.py", "README.md", "LICENSE")
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")

pytestmark = pytest.mark.wheel


@dataclass(frozen=True)
class Installed:
    """A venv holding the wheel, and a folder outside the repository to work in."""

    bin: Path
    work: Path

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDIS_URL")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if ok:
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done

    def example(self, name: str) -> Path:
        """A packaged example mesh, copied into the work folder as a user would."""
        where = self.run("python", "-c", PRINT_EXAMPLE + repr(name) + "))").stdout.strip()
        copy = self.work / name
        shutil.copyfile(where, copy)
        return copy


PRINT_EXAMPLE = "from importlib.resources import files; print(files('meshc.examples').joinpath("


def _build_wheel(folder: Path) -> Path:
    source = folder / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=JUNK)
        else:
            shutil.copy2(path, source / name)
    out = folder / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    (wheel,) = out.glob("meshc-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    folder = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(folder)
    venv.create(folder / "venv", with_pip=True)
    bin_dir = folder / "venv" / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    work = folder / "work"
    work.mkdir()
    done = Installed(bin_dir, work)
    try:
        yield done
    finally:
        done.run("meshc", "server", "stop", ok=False)


def test_only_meshc_is_installed(installed: Installed) -> None:
    site = installed.run("python", "-c", "import meshc, sys; print(meshc.__file__)").stdout
    assert ROOT.as_posix() not in site and "site-packages" in site
    tops = installed.run("python", "-c", TOP_LEVEL).stdout.split()
    assert tops == ["meshc"]
    missing = installed.run("python", "-c", "import meshes", ok=False)
    assert "No module named 'meshes'" in missing.stderr


TOP_LEVEL = (
    "from importlib.metadata import distribution as d; print(d('meshc').read_text('top_level.txt'))"
)


def test_metadata(installed: Installed) -> None:
    script = (
        "from importlib.metadata import distribution as d, entry_points as e; m = d('meshc');"
        "print(m.metadata['License-Expression']);"
        "print(sorted(x.group for x in m.entry_points));"
        "print(any(x.value.startswith('meshc') for x in e(group='pytest11')))"
    )
    lines = installed.run("python", "-c", script).stdout.splitlines()
    assert lines == ["MIT", "['console_scripts']", "False"]


def test_validate_compile_render(installed: Installed) -> None:
    mesh = installed.example("doc_review.yaml")
    installed.run("meshc", "validate", "--resolve", "--strict", mesh.name)
    installed.run("meshc", "compile", mesh.name, "-o", "out")
    agent = installed.work / "out" / "doc_review" / "agents" / "grammar.py"
    assert "from meshc.examples.review.grammar import grammar" in agent.read_text()
    mermaid = installed.run("meshc", "render", mesh.name, "--format", "mermaid").stdout
    assert "\nflowchart" in mermaid and "doc.review.summary" in mermaid
    tree = installed.run("meshc", "render", mesh.name, "--format", "text").stdout
    assert "aggregator" in tree


def test_demo_beside_a_users_own_meshes_package(installed: Installed) -> None:
    """A ``meshes/`` package of the user's in the working folder changes nothing."""
    (installed.work / "meshes").mkdir(exist_ok=True)
    (installed.work / "meshes" / "__init__.py").write_text("raise ImportError('mine')\n")
    done = installed.run("meshc", "demo", "--docs", "1")
    assert "reviewed 1 document" in done.stdout + done.stderr
    assert "Total: 1 document" in done.stdout


def test_features_without_their_extra_say_which(installed: Installed) -> None:
    mesh = installed.example("pipeline.yaml")
    tested = installed.run("meshc", "test", mesh.name, ok=False)
    assert tested.returncode == 2
    assert "pip install 'meshc[testing]'" in tested.stderr and "Traceback" not in tested.stderr
    served = installed.run("meshc", "serve", mesh.name, "--no-auth", ok=False)
    assert served.returncode == 2
    assert "pip install 'meshc[serve]'" in served.stderr and "Traceback" not in served.stderr
    llm = installed.example("doc_review_llm.yaml")
    resolved = installed.run("meshc", "validate", "--resolve", llm.name, ok=False)
    assert resolved.returncode == 1 and "pip install 'meshc[llm]'" in resolved.stdout
