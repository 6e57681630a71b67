"""Task-scoped header fields: what a task carries from its fan-out to its join.

A coordinator whose outputs reach an aggregator's join stamps every output with
``task.root`` (the entry id of the task it read: the join's identity, which a caller
cannot choose, unlike ``trace``) and ``task.lanes`` (the join lanes it sent the task
to, so a lane added or removed while tasks are in flight changes nothing for tasks
already fanned out). Every other worker copies the ``task.*`` fields of its input to
its outputs. An input without ``task.root`` carries none, and the check is one dict
lookup, so a mesh without joins keeps the commit's fast path.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.wire import TASK, Delivery

ROOT = b"task.root"
LANES = b"task.lanes"
PREFIX = TASK


def join_lanes(mesh: MeshSpec, spec: AgentSpec) -> dict[str, str]:
    """For each stream ``spec`` writes: the join lane it ends up in, one hop down (the
    stream's reader writes a stream some aggregator joins), or directly."""
    lane_of: dict[str, str] = {}
    for agg in mesh.agents.values():
        if agg.join is not None:
            lane_of.update(agg.join.lanes)
    out: dict[str, str] = {}
    for stream in spec.writes:
        if stream in lane_of:
            out[stream] = lane_of[stream]
            continue
        for reader in mesh.readers(stream):
            found = [lane_of[w] for w in mesh.agents[reader].writes if w in lane_of]
            if found:
                out[stream] = found[0]
                break
    return out


class TaskHeader:
    """The ``task.*`` fields the outputs of one input carry, for one agent."""

    def __init__(self, mesh: MeshSpec, spec: AgentSpec) -> None:
        self.lanes = join_lanes(mesh, spec) if spec.role == "coordinator" else {}

    def fields(self, d: Delivery, outputs: Sequence[tuple[str, bytes]]) -> list[bytes]:
        if self.lanes:
            sent = sorted({self.lanes[s] for s, _ in outputs if s in self.lanes})
            return [ROOT, d.entry_id, LANES, ",".join(sent).encode()]
        if ROOT not in d.fields:
            return []
        return [x for k, v in d.fields.items() if k.startswith(PREFIX) for x in (k, v)]
