"""Handlers with acceptable signatures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers import shared

if TYPE_CHECKING:  # never runs: not a coupling
    import redis  # noqa: F401


def handle(payload: Any, ctx: Any) -> Any:
    return shared.tag(payload)


async def ahandle(payload: Any, ctx: Any) -> Any:
    return payload


def with_default(payload: Any, ctx: Any, retries: int = 3) -> Any:
    return payload


def variadic(*args: Any) -> Any:
    return args[0]
