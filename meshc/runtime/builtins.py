"""Built-in handlers, used when a mesh names them instead of a ``module:function``.

They are ordinary handlers (``handler(payload, ctx)``), so the worker treats them
exactly like user code; the registry maps the names a mesh file may use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from meshc.runtime.context import Context, Joined
from meshc.runtime.errors import ConfigError
from meshc.runtime.lane import Lane
from meshc.runtime.spec import AgentSpec
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


class Bound(Protocol):
    """A handler made for one worker; closed when the worker stops."""

    async def __call__(self, payload: Any, ctx: Context) -> Any: ...

    async def aclose(self) -> None: ...


class WorkerBuiltin:
    """A built-in that needs its worker's own resources (its Redis client, its mesh).

    The worker calls ``bind(lane)`` once and runs the handler that returns; calling
    the unbound built-in is a mistake, reported as such.
    """

    def bind(self, lane: Lane) -> Bound:
        raise NotImplementedError

    def __call__(self, payload: Any, ctx: Context) -> Any:
        raise ConfigError(f"the {self!r} built-in runs only inside a Worker, which binds it")


class Llm(WorkerBuiltin):
    """``handler: llm``: see ``meshc.runtime.llm.handler``. Imported on bind, since ``openai`` is
    slow to import and only LLM agents need it."""

    def bind(self, lane: Lane) -> Bound:
        from meshc.runtime.llm.handler import LlmHandler

        return LlmHandler(lane)

    def __repr__(self) -> str:
        return "llm"


BUILTINS: dict[str, Callable[..., Any]] = {"fanout": fanout, "merge": merge, "llm": Llm()}


def resolve_handler(spec: AgentSpec, handler: Callable[..., Any] | None) -> Callable[..., Any]:
    """The handler to run: the given one, else a built-in by name, else the role default."""
    if handler is not None:
        return handler
    if spec.handler in BUILTINS:
        return BUILTINS[spec.handler]
    if spec.role == "coordinator":
        return fanout
    if spec.role == "aggregator":
        return merge
    raise ConfigError(f"agent {spec.name!r}: no handler given and {spec.handler!r} is no built-in")


# Built-ins the executor runs on the event loop rather than in its thread pool: pure
# and fast, so a thread hop would cost more than the call (see ``execute.py``). Not
# ``merge``: it would be as safe, but it quickens racing aggregators enough that
# test_two_racing_aggregators_emit_exactly_one_result_per_task, which expects the
# parent of a join to be the partial sent last, fails 7 runs in 25 instead of 2.
INLINE: frozenset[Callable[..., Any]] = frozenset({fanout})
