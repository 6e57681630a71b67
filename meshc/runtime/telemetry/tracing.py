"""OpenTelemetry spans for handler calls, chained across hops by the ``traceparent``
header (docs/observability.md).

Tracing is on when the ``opentelemetry-sdk`` and its OTLP/HTTP exporter are installed
(``pip install 'meshc[otel]'``) *and* the standard variables ask for it:
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, or
``OTEL_TRACES_EXPORTER`` naming ``otlp`` or ``console``. ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn it off. Everything else (service name, resource
attributes, sampler, batch delays, headers) is read by the SDK itself from ``OTEL_*``.

Why spans are made after the call rather than around it: a call runs on a lane thread
or a task the worker does not wrap, and the commit needs the span's context only once
the call is over. A span is therefore started and ended in one step with the call's
own start and end times, which costs the worker nothing while tracing is off and no
extra hop between threads while it is on.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("meshc.tracing")

TRACEPARENT = "traceparent"
_EXPORTERS = ("otlp", "console")
_lock = threading.Lock()
_state: dict[str, Any] = {}  # "spans": the process's Spans (or None when off)


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (before any import is tried)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(endpoint) or exporter in _EXPORTERS


def active() -> Spans | None:
    """The process's span maker, made on first use; None while tracing is off.

    One per process, because the SDK's exporter batches spans on a thread of its own
    and flushes them at exit (registered here with ``atexit``).
    """
    with _lock:
        if "spans" not in _state:
            _state["spans"] = _make() if wanted() else None
        spans: Spans | None = _state["spans"]
        return spans


def shutdown() -> None:
    """Flush and drop the process's tracer; the next :func:`active` reads the
    environment again (tests that point the exporter elsewhere use this)."""
    with _lock:
        spans = _state.pop("spans", None)
    if spans is not None:
        spans.provider.shutdown()


def _make() -> Spans | None:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning(
            "OTEL_* variables ask for traces but opentelemetry-sdk is not installed: "
            "pip install 'meshc[otel]'; tracing stays off"
        )
        return None
    exporter: Any
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "the OTLP/HTTP exporter is not installed: pip install 'meshc[otel]'; "
                "tracing stays off"
            )
            return None
        exporter = OTLPSpanExporter()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "meshc")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    atexit.register(provider.shutdown)
    return Spans(provider)


def wall_ns(monotonic: float) -> int:
    """A ``time.monotonic()`` instant as wall-clock nanoseconds (spans need those)."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


class Spans:
    """Makes the spans of one process: handler calls, merges, submitted tasks."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("meshc")
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()

    def parent(self, traceparent: bytes | str | None) -> Any:
        """The context a ``traceparent`` header names (an empty one when absent or
        malformed: the span then starts a trace of its own)."""
        if not traceparent:
            return None
        value = (
            traceparent.decode("ascii", "replace")
            if isinstance(traceparent, bytes)
            else (traceparent)
        )
        return self._propagator.extract({TRACEPARENT: value})

    def link_contexts(self, traceparents: Sequence[bytes | str]) -> list[Any]:
        """Span contexts of the given headers, the invalid ones left out."""
        out = []
        for tp in traceparents:
            ctx = self.parent(tp)
            span_ctx = self._trace.get_current_span(ctx).get_span_context() if ctx else None
            if span_ctx is not None and span_ctx.is_valid:
                out.append(span_ctx)
        return out

    def record(
        self,
        name: str,
        *,
        parent: Any,
        attributes: dict[str, Any],
        started: float,
        took: float,
        error: BaseException | None = None,
        links: Sequence[Any] = (),
        consumer: bool = True,
    ) -> bytes:
        """Record a finished span (``started`` monotonic, ``took`` seconds); the
        ``traceparent`` value its children carry."""
        trace = self._trace
        kind = trace.SpanKind.CONSUMER if consumer else trace.SpanKind.PRODUCER
        start = wall_ns(started)
        span = self.tracer.start_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            links=[trace.Link(c) for c in links],
            start_time=start,
        )
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}"))
            span.record_exception(error)
        span.end(end_time=start + int(took * 1e9))
        return traceparent_of(span.get_span_context())

    def root(self, mesh: str, stream: str, fields: dict[str, Any]) -> Any:
        """Start the root span of a task about to be written with ``fields`` (its wire
        header) and add its ``traceparent`` to them, so every hop's span joins the
        trace. The caller ends the span once the entry is written."""
        attributes = {"meshc.mesh": mesh, "meshc.agent": fields["agent"],
                      "meshc.stream": stream, "meshc.trace": fields["trace"]}  # fmt: skip
        span = self.tracer.start_span(
            f"submit {stream}", kind=self._trace.SpanKind.PRODUCER, attributes=attributes
        )
        fields[TRACEPARENT] = traceparent_of(span.get_span_context())
        return span


def traceparent_of(span_context: Any) -> bytes:
    """The W3C ``traceparent`` value of a span context (version 00)."""
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    ).encode()
