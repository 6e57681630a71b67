"""Exceptions of the worker runtime.

One small hierarchy, so callers can catch ``MeshRuntimeError`` for anything meshc
raised on purpose and still tell a handler's own bug from a contract violation.
"""

from __future__ import annotations


class MeshRuntimeError(Exception):
    """Base class of every error the runtime raises deliberately."""


class ConfigError(MeshRuntimeError):
    """Raised before any message is read, when the spec cannot run as given.

    Examples: an unknown agent name, a partition number outside ``range(P)``, an
    aggregator without a join, or no handler and no built-in of that name.
    """


class UndeclaredStream(MeshRuntimeError):
    """Raised at once by ``ctx.emit`` (or after a handler returns a mapping) when the
    target stream is not among the agent's ``writes``.

    It surfaces inside the handler so the bug shows at its source; the message then
    counts as a handler failure and is retried, as any other handler error.
    """

    def __init__(self, agent: str, stream: str, declared: tuple[str, ...]) -> None:
        self.agent = agent
        self.stream = stream
        self.declared = declared
        names = ", ".join(declared) or "none"
        super().__init__(f"agent {agent!r} may not write stream {stream!r}: it declares {names}")


class InvalidOutput(MeshRuntimeError):
    """Raised when a handler's output does not fit the output stream's model.

    Validated before the commit so a bad result never reaches downstream readers; it
    is treated as a handler error (retried, then dead-lettered).
    """


class HandlerTimeout(MeshRuntimeError):
    """Raised in place of a result when a handler ran longer than ``policy.timeout``."""


class PermanentError(MeshRuntimeError):
    """Raised by a handler when delivering the message again cannot help.

    The worker dead-letters the message at once instead of waiting for
    ``max_deliveries``. The ``llm`` built-in raises it for a reply that is still
    invalid after its repair attempt, a prompt that cannot render for this payload,
    or a request the model server refuses as malformed.
    """


class MeshOpsError(MeshRuntimeError):
    """Base of the errors raised by meshc's operational modules (server, client, admin).

    The CLI catches this one class, prints its message and exits 2, so every subclass
    carries a message written for a person at a terminal.
    """


class ConnectError(MeshOpsError):
    """Raised when a URL cannot be used (unknown scheme, a malformed cluster URL)."""


class ServerUnreachable(ConnectError):
    """Raised when nothing answers at the URL, or it refuses our credentials."""
