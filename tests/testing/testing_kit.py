"""Helpers of the ``test_testing_*`` modules: a small mesh with a join, written to a
temporary folder, and handlers importable from there under a unique module name."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from meshc.testing.loading import LoadedMesh, load

UNIT_MESH = """
mesh: {name}
version: 1
types:
  Task:
    id: str
    text: str
  Part:
    id: str
    lane: str
    n: int
  Out:
    id: str
    lanes: list[str]
    total: int
    missing: list[str]
streams:
  t.tasks:
    type: Task
  t.out:
    type: Out
    terminal: true
lanes:
  l:
    names: [a, b, c]
    input: {{stream: "t.lane.{{lane}}", type: Task}}
    output: {{stream: "t.part.{{lane}}", type: Part}}
    agent: {{name: "{{lane}}", handler: "{module}:lane"}}
agents:
  src:
    role: producer
    writes: [t.tasks]
  split:
    role: coordinator
    reads: [t.tasks]
    writes: ["@l.input"]
  merge:
    role: aggregator
    reads: ["@l.output"]
    writes: [t.out]
    handler: {module}:merge
    join:
      on: [id]
      timeout: 30s
"""

GOOD_HANDLERS = """
def lane(task, ctx):
    return {"id": task.id, "lane": ctx.stream.rsplit(".", 1)[-1], "n": len(task.text)}


def merge(joined, ctx):
    parts = sorted(joined.parts.items())
    return {
        "id": joined.key["id"],
        "lanes": [lane for lane, _ in parts],
        "total": sum(p.n for _, p in parts),
        "missing": list(joined.missing),
    }
"""


def write_mesh(folder: Path, handlers: str = GOOD_HANDLERS, extra: str = "") -> Path:
    """A mesh file and its handler module (a fresh module name) in ``folder``."""
    token = uuid.uuid4().hex[:10]
    module = f"h_{token}"  # not the mesh's name: the compiled package is named after it
    (folder / f"{module}.py").write_text(textwrap.dedent(handlers))
    path = folder / f"m_{token}.yaml"
    path.write_text(UNIT_MESH.format(name=f"m_{token}", module=module) + textwrap.dedent(extra))
    return path


def load_mesh(folder: Path, handlers: str = GOOD_HANDLERS) -> LoadedMesh:
    return load(str(write_mesh(folder, handlers)), folder)
