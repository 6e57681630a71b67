"""The live numbers of ``meshc render --live``, read with ``meshc status``'s reads.

:func:`meshc.ops.admin.status` reads lengths, groups (lag counted by hand where
the server cannot say) and dead letters over every partition; this module only
reshapes its report into the :class:`~meshc.render.live.LiveStats` that renderers
draw, so the diagram and ``meshc status`` never disagree.
"""

from __future__ import annotations

from typing import Any

import redis
from meshc.ops.admin import status
from meshc.render.live import GroupStats, LiveStats
from meshc.runtime.spec import MeshSpec


def read_live(mesh: MeshSpec, url: str | redis.Redis) -> LiveStats:
    """The state of ``mesh`` on the server at ``url`` (or on a client given)."""
    return live_stats(status(mesh, url))


def live_stats(report: dict[str, Any]) -> LiveStats:
    """A status report as renderers take it. A group missing on some partition counts
    as not there yet, as its reader has not started everywhere."""
    streams: dict[str, Any] = report["streams"]
    return LiveStats(
        lengths={name: s["length"] for name, s in streams.items()},
        groups={
            (name, group): GroupStats(g["lag"], g["pending"])
            for name, s in streams.items()
            for group, g in s["groups"].items()
            if g["exists"]
        },
        dead={name: a["dead_letters"] for name, a in report["agents"].items()},
    )
