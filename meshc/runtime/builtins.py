"""Built-in handlers, used when a mesh names them instead of a ``module:function``.

They are ordinary handlers (``handler(payload, ctx)``), so the worker treats them
exactly like user code; the registry maps the names a mesh file may use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshc.runtime.context import Context, Joined
from pydantic import BaseModel


def fanout(payload: BaseModel, ctx: Context) -> None:
    """The coordinator default: the task, unchanged, to every output lane.

    Uses ``ctx.emit`` rather than a return value so it works for any number of lanes,
    one included.
    """
    for stream in ctx.spec.writes:
        ctx.emit(stream, payload)


def merge(joined: Joined, ctx: Context) -> dict[str, Any]:
    """The aggregator default: the join key, every part by lane, and the missing lanes."""
    return {
        **joined.key,
        "parts": {lane: part.model_dump(mode="json") for lane, part in joined.parts.items()},
        "missing": list(joined.missing),
    }


BUILTINS: dict[str, Callable[..., Any]] = {"fanout": fanout, "merge": merge}
