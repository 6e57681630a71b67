"""One module for every lane of a family: agents sharing a module is not coupling."""

from typing import Any


def a(payload: Any, ctx: Any) -> Any:
    return payload


def b(payload: Any, ctx: Any) -> Any:
    return payload
