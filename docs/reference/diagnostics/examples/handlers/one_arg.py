from typing import Any


def handle(payload: Any) -> Any:
    return payload
