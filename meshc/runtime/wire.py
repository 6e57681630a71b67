"""The wire format of stream entries (docs/design.md section 5, "Wire format").

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

# The header of every entry a worker writes (the README's "Wire format"), defined once:
# the commit scripts, the client, the admin reads and the tests take the names from here.
DATA = b"data"
TRACE = b"trace"
PARENT = b"parent"
AGENT = b"agent"
ATTEMPT = b"attempt"
TOOK = b"took"  # the handler's time in ms; absent under a millisecond
SCHEMA = b"schema"  # the writer's "<mesh>@<version>/<type fingerprints>"
TASK = b"task."  # the prefix of task-scoped fields, copied hop to hop (``taskhead``)
TRACEPARENT = b"traceparent"  # W3C trace context of the span that wrote it; while tracing
HEADER = (DATA, TRACE, PARENT, AGENT, ATTEMPT, TOOK)

# The extra fields of a dead letter (its header is the standard one).
ERROR = b"error"
SOURCE_STREAM = b"source_stream"
SOURCE_ID = b"source_id"
DELIVERIES = b"deliveries"
SOURCE_PARENT = b"source_parent"
SOURCE_AGENT = b"source_agent"
JOIN = b"join"
MAX_TRACE = 256  # bytes: a longer `trace` header is refused as malformed

Fields = dict[bytes, bytes]


@dataclass(slots=True)
class Delivery:
    """One entry handed to this consumer, with where it came from.

    ``attempt`` is the delivery count the server keeps in the group's pending list:
    1 for a fresh read, higher after a retry. ``recovered`` marks an entry that a
    predecessor of this worker held when it died (see ``recovery``): it is run again
    without counting against ``max_deliveries``; ``verdict`` says why one of them is
    to be dead-lettered instead of run.
    """

    key: bytes
    stream: str
    partition: int
    entry_id: bytes
    fields: Fields
    attempt: int = 1
    recovered: bool = False
    verdict: str | None = None  # recovery found it killed its worker: dead-letter it

    @property
    def trace(self) -> bytes:
        """The root task id; an entry without a header is its own root."""
        return self.fields.get(TRACE) or self.entry_id

    @property
    def data(self) -> bytes | None:
        return self.fields.get(DATA)

    def header_problem(self) -> str | None:
        """Why this entry's header cannot be used, or None. Headers come from outside
        producers too, so they are checked as bytes before anything decodes them."""
        trace = self.fields.get(TRACE)
        if trace is None:
            return None
        if len(trace) > MAX_TRACE:
            return f"malformed header: `trace` is {len(trace)} bytes (at most {MAX_TRACE})"
        try:
            trace.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"malformed header: `trace` is not UTF-8 text ({exc.reason} at byte {exc.start})"
        return None


def id_order(entry_id: bytes | str) -> tuple[int, int]:
    """Sort key of an entry id (``ms-seq``), since ids do not sort as strings."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


def took_ms(seconds: float) -> bytes:
    """The ``took`` header value: whole milliseconds, or empty under one (no field)."""
    ms = int(seconds * 1000)
    return str(ms).encode() if ms else b""


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


def dlq_fields(
    delivery: Delivery, agent: str, error: str, deliveries: int, max_data: int
) -> list[bytes]:
    """The flat field list of a dead letter.

    ``agent`` and ``trace`` follow the wire format (the writer is the agent that gave
    up); ``source_parent`` and ``source_agent`` keep the original header so a redrive
    can restore it. An entry whose fields were trimmed away keeps an empty ``data``; a
    payload over ``max_data`` bytes (the reason it was refused) is not copied whole:
    its first ``max_data`` bytes are kept and ``data_bytes`` says how long it was.
    """
    f = delivery.fields
    data = f.get(DATA, b"")
    fields = [
        DATA,
        data[:max_data],
        ERROR,
        error.encode("utf-8", "replace"),
        SOURCE_STREAM,
        delivery.stream.encode(),
        SOURCE_ID,
        delivery.entry_id,
        DELIVERIES,
        str(deliveries).encode(),
        TRACE,
        delivery.trace if delivery.header_problem() is None else delivery.entry_id,
        AGENT,
        agent.encode(),
        SOURCE_PARENT,
        f.get(PARENT, b""),
        SOURCE_AGENT,
        f.get(AGENT, b""),
    ]
    if len(data) > max_data:
        fields += [b"data_bytes", str(len(data)).encode()]
    fields += [x for k, v in f.items() if k.startswith(TASK) for x in (k, v)]  # for a redrive
    return fields


def short_error(exc: BaseException, limit: int = 2000) -> str:
    """A one-entry description of an exception, bounded so a dead letter stays small."""
    msg = f"{type(exc).__name__}: {exc}"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
