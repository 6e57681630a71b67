"""Imports a Redis client lazily, inside the function: still a coupling."""

from typing import Any


def handle(payload: Any, ctx: Any) -> Any:
    import valkey  # noqa: F401

    return payload
