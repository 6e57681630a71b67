"""Compile into the working folder's cache so ``meshc run`` runs what ``compile`` writes.

The cache is ``.meshc/build/<content hash>/<mesh>/``; a mesh file that has not changed
is not compiled again. ``load_spec`` imports the compiled topology (the runtime's view
of the mesh) from there.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from meshc import __version__
from meshc.api import MeshError, analyze_file
from meshc.codegen import compile_analysis, write_package
from meshc.runtime.spec import MeshSpec


@dataclass(frozen=True)
class Built:
    """A compiled mesh in the cache: import ``package`` with ``root`` on sys.path."""

    root: Path
    package: str

    def load_spec(self) -> MeshSpec:
        # This build first on sys.path, and an earlier build of a mesh with the same name
        # forgotten: the import must pick up *this* build (tests, notebooks, meshc test).
        root = str(self.root)
        if root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
        loaded = sys.modules.get(self.package)
        if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(root):
            for name in [m for m in sys.modules if m.split(".")[0] == self.package]:
                del sys.modules[name]
        importlib.invalidate_caches()
        module = importlib.import_module(f"{self.package}.topology")
        spec: MeshSpec = module.MESH
        return spec

    def worker_env(self) -> dict[str, str]:
        """The environment a worker process needs to import this build: PYTHONPATH with
        the compiled package, then the working folder (the user's handlers), then what
        PYTHONPATH held already."""
        paths = [str(self.root), str(Path.cwd())]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        return {"PYTHONPATH": os.pathsep.join(paths)}


def build_cached(path: str, folder: Path | None = None, *, resolve: bool = False) -> Built:
    """Validate and compile ``path`` into the cache; MeshError when it is invalid.

    ``resolve`` also imports every handler (MESH301-303) first: ``meshc run`` refuses
    a mesh whose workers could only crash-loop on an ImportError.
    """
    analysis = analyze_file(path, resolve=resolve)
    if not analysis.ok or analysis.core is None:
        raise MeshError(analysis)
    digest = hashlib.sha256(
        analysis.source.text.encode("utf-8") + __version__.encode()
    ).hexdigest()[:16]
    root = (folder or Path.cwd()) / ".meshc" / "build" / digest
    # A prefixed package name: a mesh called like one of the user's own top-level
    # modules (its handlers, say) must not hide it. Generated code imports itself
    # relatively, so the folder's name is free.
    package = f"meshc_build_{analysis.core.name}"
    target = root / package
    if not (target / "topology.py").exists():
        write_package(target, compile_analysis(analysis, path))
    return Built(root=root, package=package)
