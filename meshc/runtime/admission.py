"""What a worker checks before it runs a handler on an entry, and why it refuses one.

Each refusal has a reason written for the person who reads the dead letter; the
entry is then dead-lettered at once (no delivery again can help) or, for an entry
whose fields were trimmed away while pending, acknowledged bare.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshc.runtime.spec import Policy
from meshc.runtime.wire import DATA, Delivery
from pydantic import BaseModel, ValidationError

DLQ_DATA = 65_536  # bytes of an oversized payload kept in its dead letter


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why ``d`` will not run: ``error`` for its dead letter (None: trimmed, ack it)."""

    error: str | None
    deliveries: int | None = None  # what the dead letter says, when not d.attempt
    max_data: int | None = None  # bytes of the payload kept, when not all


TRIMMED = Refusal(None)


def admit(d: Delivery, policy: Policy, model: type[BaseModel]) -> BaseModel | Refusal:
    """The validated payload of ``d``, or why it is refused."""
    if d.verdict is not None:
        return Refusal(d.verdict)
    data = d.fields.get(DATA)
    if data is None:
        return Refusal("entry has no `data` field (the payload's JSON)") if d.fields else TRIMMED
    problem = d.header_problem()
    if problem is not None:
        return Refusal(problem)
    if d.attempt > policy.max_deliveries and not d.recovered:
        return Refusal(
            f"delivered {d.attempt} times, more than max_deliveries="
            f"{policy.max_deliveries}; its handler never finished",
            deliveries=d.attempt - 1,
        )
    if len(data) > policy.max_payload_bytes:
        error = f"payload of {len(data)} bytes exceeds {policy.max_payload_bytes}"
        return Refusal(error, max_data=DLQ_DATA)
    try:  # the core validator directly: model_validate_json's wrapper cost 40% more
        return model.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return Refusal(f"invalid {model.__name__} payload: {exc}")
