"""What a handler sees besides its payload: ``ctx`` and, for aggregators, ``Joined``.

Outputs are validated and serialised the moment they are emitted, so a handler that
emits to an undeclared stream or emits a payload that does not fit fails at the line
that did it, and nothing invalid can reach the commit script.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meshc.runtime.errors import InvalidOutput, UndeclaredStream
from meshc.runtime.spec import AgentSpec
from meshc.runtime.wire import dump_output
from pydantic import BaseModel

Output = tuple[str, bytes]
RESERVED_FIELDS = frozenset(
    {"data", "trace", "parent", "agent", "attempt", "schema", "traceparent"}
)


class Context:
    """Per-message context passed as the handler's second argument.

    ``trace`` is the root task id, ``entry_id`` the input entry, ``attempt`` its
    delivery count (1 on the first try), ``stream`` the input stream name, ``spec``
    the agent's settings and policy, ``log`` the agent's logger. For an aggregator's
    merge, ``entry_id`` is the last partial, ``attempt`` counts merge attempts and
    ``stream`` is empty (a join has several inputs). A plain slotted class because
    one is built per message on the hot path.
    """

    __slots__ = (
        "agent",
        "trace",
        "entry_id",
        "attempt",
        "spec",
        "stream",
        "partition",
        "log",
        "header",
        "_models",
        "_outputs",
    )

    def __init__(
        self,
        spec: AgentSpec,
        models: Mapping[str, type[BaseModel]],
        log: logging.Logger,
        *,
        trace: str,
        entry_id: str,
        attempt: int,
        stream: str,
        partition: int = 0,
    ) -> None:
        self.agent = spec.name
        self.spec = spec
        self.trace = trace
        self.entry_id = entry_id
        self.attempt = attempt
        self.stream = stream
        self.partition = partition
        self.log = log
        self.header: dict[str, str] | None = None
        self._models = models
        self._outputs: list[Output] = []

    @property
    def logger(self) -> logging.Logger:
        """Alias of ``log`` for handlers that prefer the longer name."""
        return self.log

    def add_header(self, name: str, value: str) -> None:
        """Add a header field to every output of this message (``llm_tokens``, …).

        The wire format's own fields (``data``, ``trace``, ``parent``, ``agent``,
        ``attempt``, ``traceparent``) cannot be replaced. Aggregators' merged results carry no extra
        fields (their join script writes a fixed header).
        """
        if name in RESERVED_FIELDS or name.startswith("task."):
            raise ValueError(f"header field {name!r} is part of the wire format")
        if self.header is None:
            self.header = {}
        self.header[name] = value

    def emit(self, stream: str, payload: Any) -> None:
        """Queue one output; it is written only if this message's commit succeeds.

        Raises ``UndeclaredStream`` at once for a stream the agent does not write and
        ``InvalidOutput`` for a payload that does not fit the stream's model.
        """
        model = self._models.get(stream)
        if model is None:
            raise UndeclaredStream(self.agent, stream, self.spec.writes)
        self._outputs.append((stream, dump_output(model, payload)))

    def collect(self, result: Any) -> list[Output]:
        """All outputs of the message: what was emitted plus what the handler returned.

        With one output stream the return value is the payload (or a list of them);
        with several it must be a mapping ``{stream: payload or [payloads]}``.
        """
        if result is not None:
            writes = self.spec.writes
            if len(writes) == 1:
                self._emit_all(writes[0], result)
            elif isinstance(result, Mapping):
                for stream, value in result.items():
                    self._emit_all(str(stream), value)
            else:
                raise InvalidOutput(
                    f"agent {self.agent!r} writes {len(writes)} streams; its handler "
                    f"must return a mapping {{stream: payload}} or None, "
                    f"not {type(result).__name__}"
                )
        return self._outputs

    def _emit_all(self, stream: str, value: Any) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                self.emit(stream, item)
        else:
            self.emit(stream, value)


@dataclass(frozen=True)
class Joined:
    """The input of an aggregator's merge handler: one task's partial results.

    ``key`` holds the join-key field values, ``parts`` maps lane name to the
    validated partial, ``missing`` names the lanes that had not arrived when the join
    timed out (empty when the join completed).
    """

    key: dict[str, Any]
    parts: dict[str, BaseModel]
    missing: tuple[str, ...] = ()


class Call:
    """One handler invocation and its outcome, filled in by a runner (``calls.py``).

    ``then`` is called on the event loop when the call finished (or was abandoned at
    its deadline); ``tag`` is what the caller needs back (the delivery, the join).
    ``started`` and ``took`` are monotonic seconds; ``expired`` marks a deadline hit.
    """

    __slots__ = ("payload", "ctx", "result", "error", "then", "tag", "started", "took", "expired")

    def __init__(
        self,
        payload: Any,
        ctx: Context,
        then: Callable[[Call], None] | None = None,
        tag: Any = None,
    ) -> None:
        self.payload = payload
        self.ctx = ctx
        self.result: Any = None
        self.error: BaseException | None = None
        self.then = then
        self.tag = tag
        self.started = 0.0
        self.took = 0.0
        self.expired = False
