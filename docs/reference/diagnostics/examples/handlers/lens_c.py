"""Imports another agent's handler module with a relative import."""

from typing import Any

from . import lens_b


def handle(payload: Any, ctx: Any) -> Any:
    return lens_b.handle(payload, ctx)
