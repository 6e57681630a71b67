from typing import Any


def handle(payload: Any, ctx: Any) -> Any:
    return payload
