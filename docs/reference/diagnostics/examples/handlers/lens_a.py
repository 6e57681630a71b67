"""Imports another agent's handler module."""

from typing import Any

from handlers import lens_b


def handle(payload: Any, ctx: Any) -> Any:
    return lens_b.handle(payload, ctx)
