"""The gateway's endpoints (docs/gateway.md describes each for callers).

``POST /tasks/{intake}`` submits, ``GET /tasks/{trace}`` answers 200 with the
result(s), 202 while none has arrived and 404 for a trace no gateway of this mesh
submitted (or that it forgot after ``--keep``), ``GET /tasks/{trace}/events``
streams the task's hops, ``GET /openapi.json`` describes it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import redis
from meshc.gateway import events, records, streams
from meshc.gateway.config import GatewayConfigError, check_webhook_url
from meshc.gateway.http import TooLarge, json, problem, read_body
from meshc.ops.client import BackpressureError, PayloadTooLarge, SubmitError
from meshc.runtime.telemetry import new_trace
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from meshc.gateway.app import Gateway

RETRY_AFTER = "1"
KEEPALIVE_S = 15.0
SINCE_MARGIN_MS = 5_000
log = logging.getLogger("meshc.gateway")


def table(gw: Gateway) -> list[Route]:
    async def submit(request: Request) -> Response:
        return await _submit(gw, request)

    async def task(request: Request) -> Response:
        return await _task(gw, request)

    async def task_events(request: Request) -> Response:
        return await _events(gw, request)

    async def document(request: Request) -> Response:
        return Response(gw.document, media_type="application/json")

    async def health(request: Request) -> Response:
        assert gw.redis is not None
        await gw.redis.ping()
        held = {"long_polls": gw.waits.now, "event_streams": gw.streams.now}
        return json({"ok": True, "mesh": gw.config.mesh.name, "held": held})

    return [
        Route("/tasks/{intake}", submit, methods=["POST"]),
        Route("/tasks/{trace}", task, methods=["GET"]),
        Route("/tasks/{trace}/events", task_events, methods=["GET"]),
        Route("/openapi.json", document, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]


def handlers() -> Mapping[Any, Any]:
    """A lost server is 503 (retry), a bug a one-line 500 (no traceback to callers)."""

    async def unreachable(request: Request, exc: Exception) -> Response:
        return problem(503, f"the mesh's server cannot be reached: {exc}", Retry_After="1")

    async def bug(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc,
                  exc_info=bool(os.environ.get("MESHC_DEBUG")))  # fmt: skip
        return problem(500, f"internal error: {type(exc).__name__}")

    return {redis.ConnectionError: unreachable, redis.TimeoutError: unreachable, Exception: bug}


async def _submit(gw: Gateway, request: Request) -> Response:
    mesh = gw.config.mesh
    intake = request.path_params["intake"]
    if intake not in mesh.intake_streams():
        known = ", ".join(mesh.intake_streams()) or "none"
        return problem(404, f"{intake!r} is not an intake stream of {mesh.name!r} ({known})")
    webhook = request.query_params.get("webhook")
    if webhook is not None and (refused := _refuse_webhook(gw, webhook)):
        return problem(400, refused)
    try:
        body = await read_body(request, gw.config.limits.max_body)
    except TooLarge:
        limit = gw.config.limits.max_body
        return problem(413, f"the body is over the gateway's {limit}-byte limit")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        return problem(400, f"the body is not JSON: {err}")
    if not isinstance(payload, dict):
        return problem(422, f"a task is a JSON object, not {type(payload).__name__}")
    model = mesh.streams[intake].model
    try:
        model.model_validate(payload)
    except ValidationError as err:
        return _invalid(intake, model.__name__, err)
    return await _write(gw, intake, payload, webhook)


def _refuse_webhook(gw: Gateway, url: str) -> str | None:
    hooks = gw.config.webhooks
    try:
        check_webhook_url(url, "webhook")
    except GatewayConfigError as err:
        return str(err)
    if hooks is None or not hooks.allows(url):
        return "this webhook URL is not allowed: the gateway takes per-task webhooks only "\
            "under the prefixes given with --webhook-allow"  # fmt: skip
    return None


def _invalid(intake: str, model: str, err: ValidationError) -> Response:
    detail = err.errors(include_url=False, include_context=False, include_input=False)
    return json(
        {"error": f"the body does not fit {intake} ({model})", "detail": detail}, status=422
    )


async def _write(
    gw: Gateway, intake: str, payload: dict[str, Any], webhook: str | None
) -> Response:
    """Record the task, submit it through MeshClient (a thread: it is synchronous)."""
    assert gw.client is not None
    client, mesh, keep = gw.client, gw.config.mesh.name, gw.config.keep
    trace = new_trace()

    def write() -> Any:
        records.create(client.redis, mesh, trace, intake, webhook, keep)
        try:
            done = client.submit(payload, intake, trace=trace)
        except BaseException:
            client.redis.delete(records.record_key(mesh, trace))
            raise
        records.submitted(client.redis, mesh, trace, done.key, done.entry_id)
        return done

    try:
        done = await run_in_threadpool(write)
    except BackpressureError as err:
        return problem(429, str(err), Retry_After=RETRY_AFTER)
    except PayloadTooLarge as err:
        return problem(413, str(err))
    except SubmitError as err:
        return problem(400, str(err))
    where = f"/tasks/{trace}"
    doc = {"trace": trace, "id": done.entry_id, "stream": intake,
           "status_url": where, "events_url": f"{where}/events"}  # fmt: skip
    return json(doc, 202, {"Location": where})


def _wait_seconds(gw: Gateway, request: Request) -> float | None:
    """``?wait=`` as seconds, capped by ``--max-wait``; None when it is not a number."""
    text = request.query_params.get("wait", "0")
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, gw.config.limits.max_wait)


async def _task(gw: Gateway, request: Request) -> Response:
    assert gw.redis is not None and gw.hub is not None
    trace = request.path_params["trace"]
    wait = _wait_seconds(gw, request)
    if wait is None:
        return problem(400, "wait must be a number of seconds, 0 or more")
    if wait > 0 and not gw.waits.take():
        return problem(503, "too many requests are waiting; retry later", Retry_After=RETRY_AFTER)
    try:
        future = gw.hub.watch(trace) if wait > 0 else None
        try:
            record = await records.load(gw.redis, gw.config.mesh.name, trace)
            if record is None:
                return _unknown(trace)
            seen = gw.hub.recent(trace)
            results = record.results or ([seen] if seen else [])
            if not results and future is not None:
                with contextlib.suppress(TimeoutError):
                    results = [await asyncio.wait_for(future, wait)]
        finally:
            if future is not None:
                gw.hub.forget(trace, future)
    finally:
        if wait > 0:
            gw.waits.give()
    if not results:
        return json({"trace": trace, "status": "pending", "results": []}, 202,
                    {"Retry-After": RETRY_AFTER})  # fmt: skip
    return json({"trace": trace, "status": "done", "results": [r.as_json() for r in results]})


def _unknown(trace: str) -> Response:
    return problem(
        404,
        f"no task {trace!r}: no gateway of this mesh submitted it, or it was submitted "
        "longer ago than the gateway remembers (--keep)",
    )


async def _events(gw: Gateway, request: Request) -> Response:
    assert gw.redis is not None
    trace = request.path_params["trace"]
    record = await records.load(gw.redis, gw.config.mesh.name, trace)
    if record is None:
        return _unknown(trace)
    if not gw.streams.take():
        return problem(503, "too many event streams are open; retry later", Retry_After=RETRY_AFTER)
    mesh = gw.config.mesh
    partition = streams.partition_of_key(mesh, record.intake, record.key)
    if record.entry:
        since = int(record.entry.split("-")[0])
    else:  # the submission is still being written
        since = int(time.time() * 1000) - SINCE_MARGIN_MS
    hops = events.follow(gw.redis, mesh, trace, partition, since)
    return _Held(_sse(hops, gw.config.limits.max_wait), gw.streams.give)


class _Held(StreamingResponse):
    """An event stream that gives its slot back however it ends (even one whose
    client left before its first byte, when the body never starts)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(body, headers=headers, media_type="text/event-stream")
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def _sse(hops: AsyncGenerator[events.Hop | None, None], bound: float) -> AsyncIterator[bytes]:
    """The events as SSE frames; a comment every 15 s keeps proxies from closing an
    idle stream, and after ``bound`` seconds a ``timeout`` event ends it."""
    try:
        yield b": following the task\n\n"
        began = last = time.monotonic()
        async for hop in hops:
            now = time.monotonic()
            if hop is not None:
                head = f"id: {hop.stream}/{hop.id}\nevent: {hop.kind}\ndata: ".encode()
                yield head + orjson.dumps(hop.as_json()) + b"\n\n"
                last = now
            elif now - last >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                last = now
            if now - began >= bound:
                yield b'event: timeout\ndata: {"error": "no result within the wait bound"}\n\n'
                return
    finally:
        await hops.aclose()
