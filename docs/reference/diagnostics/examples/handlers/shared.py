"""A helper module that no agent is bound to: any handler may import it."""

from typing import Any


def tag(payload: Any) -> Any:
    return payload
