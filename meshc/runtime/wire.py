"""The wire format of stream entries (DESIGN.md section 5, "Wire format").

An entry holds the payload as UTF-8 JSON in ``data`` and a flat header: ``trace``
(root task id), ``parent`` (entry id it came from), ``agent`` (who wrote it) and
``attempt`` (delivery count of the input that produced it). Outside producers may
send ``data`` alone; the trace is then the entry's own id. Everything stays ``bytes``
on the hot path: orjson and pydantic read bytes directly, so decoding would be waste.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshc.runtime.errors import InvalidOutput
from pydantic import BaseModel, ValidationError

DATA = b"data"
TRACE = b"trace"
PARENT = b"parent"
AGENT = b"agent"
ATTEMPT = b"attempt"

Fields = dict[bytes, bytes]


@dataclass(slots=True)
class Delivery:
    """One entry handed to this consumer, with where it came from.

    ``attempt`` is the delivery count the server keeps in the group's pending list:
    1 for a fresh read, higher after a reclaim.
    """

    key: bytes
    stream: str
    partition: int
    entry_id: bytes
    fields: Fields
    attempt: int = 1

    @property
    def trace(self) -> bytes:
        """The root task id; an entry without a header is its own root."""
        return self.fields.get(TRACE) or self.entry_id

    @property
    def data(self) -> bytes | None:
        return self.fields.get(DATA)


def text(value: bytes | str) -> str:
    """Decode a server reply value (ids, names) for people and logs."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def dump_output(model: type[BaseModel], value: Any) -> bytes:
    """Validate one output against its stream's model and return its JSON bytes.

    An instance of the exact model is trusted (pydantic validated it when it was
    built); anything else (a dict, another model) is validated first, so a payload
    that does not fit is caught before the commit rather than by the next reader.
    """
    # pydantic's core serializer directly: bytes without model_dump_json's wrapper and
    # the str round trip (half the cost of a pass-through's output, profiled).
    serialize = model.__pydantic_serializer__.to_json
    if type(value) is model:
        out: bytes = serialize(value)
        return out
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if not isinstance(value, Mapping):
        raise InvalidOutput(
            f"output for a {model.__name__} stream must be a model or a mapping, "
            f"not {type(value).__name__}"
        )
    try:
        out = serialize(model.model_validate(value))
    except ValidationError as exc:
        raise InvalidOutput(f"output does not fit {model.__name__}: {exc}") from exc
    return out


def dlq_fields(delivery: Delivery, agent: str, error: str, deliveries: int) -> list[bytes]:
    """The flat field list of a dead letter.

    ``agent`` and ``trace`` follow the wire format (the writer is the agent that gave
    up); ``source_parent`` and ``source_agent`` keep the original header so a redrive
    can restore it. An entry whose fields were trimmed away keeps an empty ``data``.
    """
    f = delivery.fields
    return [
        DATA,
        f.get(DATA, b""),
        b"error",
        error.encode("utf-8", "replace"),
        b"source_stream",
        delivery.stream.encode(),
        b"source_id",
        delivery.entry_id,
        b"deliveries",
        str(deliveries).encode(),
        TRACE,
        delivery.trace,
        AGENT,
        agent.encode(),
        b"source_parent",
        f.get(PARENT, b""),
        b"source_agent",
        f.get(AGENT, b""),
    ]


def short_error(exc: BaseException, limit: int = 2000) -> str:
    """A one-entry description of an exception, bounded so a dead letter stays small."""
    msg = f"{type(exc).__name__}: {exc}"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
