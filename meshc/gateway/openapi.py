"""The gateway's OpenAPI 3.1 document, generated from the mesh's own types.

Each intake stream gets its own ``POST /tasks/<intake>`` whose request body is the
intake's message model, and results are typed by the terminal streams' models, so a
client generator gives callers the mesh's types. The models' JSON Schemas come from
pydantic (the generated package's models are what the workers validate with); the
gateway's own shapes are named ``gateway.*``, a name no mesh type can have (type
names have no dot). Built once per mesh; keys are sorted when it is served, so the
bytes are the same on every run.
"""

from __future__ import annotations

from typing import Any

import orjson
from meshc.runtime.spec import MeshSpec
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _text(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


def gateway_schemas(results: dict[str, Any]) -> dict[str, Any]:
    """The gateway's own shapes; ``results`` is the schema of one result's ``data``."""
    result = _obj(
        ["stream", "id", "data"],
        stream=_text("terminal stream"), id=_text("entry id"), data=results,
    )  # fmt: skip
    hop = _obj(
        ["stream", "id", "agent", "parent", "attempt"],
        stream=_text("stream the entry was written to"),
        id=_text("entry id"),
        agent=_text("the agent that wrote it"),
        parent=_text("the entry it came from ('' for the task itself)"),
        attempt={"type": "integer", "description": "delivery count of its input"},
        data=results,
        error=_text("why the entry was dead-lettered (dead_letter events)"),
    )
    field_error = _obj(
        ["loc", "msg", "type"],
        loc={"type": "array", "items": {"type": ["string", "integer"]}},
        msg={"type": "string"},
        type={"type": "string"},
    )
    return {
        "gateway.Submitted": _obj(
            ["trace", "id", "stream", "status_url", "events_url"],
            trace=_text("the task's trace id"),
            id=_text("its entry id in the intake stream"),
            stream=_text("the intake stream"),
            status_url=_text("where its result will be (also the Location header)"),
            events_url=_text("its hops as server-sent events"),
        ),
        "gateway.Result": result,
        "gateway.Task": _obj(
            ["trace", "status", "results"],
            trace={"type": "string"},
            status={"type": "string", "enum": ["pending", "done"]},
            results={"type": "array", "items": _ref("gateway.Result")},
        ),
        "gateway.Hop": hop,
        "gateway.Problem": _obj(["error"], error=_text("what went wrong and what to do")),
        "gateway.Invalid": _obj(
            ["error", "detail"],
            error={"type": "string"},
            detail={"type": "array", "items": _ref("gateway.FieldError")},
        ),
        "gateway.FieldError": field_error,
    }


def _problem(description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("gateway.Problem")}},
    }
    if headers:
        out["headers"] = {
            h: {"schema": {"type": "string"}, "description": d} for h, d in headers.items()
        }
    return out


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _submit(stream: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"submit_{stream.replace('.', '_').replace('-', '_')}",
            "summary": f"Submit a task to {stream} ({model.__name__})",
            "parameters": [
                {
                    "name": "webhook",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "format": "uri"},
                    "description": "push this task's result to this URL (it must start with "
                    "a prefix allowed by --webhook-allow)",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(model.__name__)}},
            },
            "responses": {
                "202": {
                    **_json("gateway.Submitted", "accepted: the task is in the intake"),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "400": _problem("the body is not JSON, or the webhook is not allowed"),
                "401": _problem("no valid bearer token"),
                "413": _problem("the body is over the gateway's or the agents' size limit"),
                "422": _json("gateway.Invalid", "the body does not fit the intake's type"),
                "429": _problem("the intake's backlog is at its bound", **{"Retry-After": "s"}),
                "503": _problem("the server of the mesh cannot be reached"),
            },
        }
    }


def _task_paths() -> dict[str, Any]:
    trace = {"name": "trace", "in": "path", "required": True, "schema": {"type": "string"}}
    wait = {
        "name": "wait",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "minimum": 0},
        "description": "wait up to this many seconds for the result (capped by --max-wait)",
    }
    busy = _problem("too many requests held open; retry later", **{"Retry-After": "s"})
    return {
        "/tasks/{trace}": {
            "get": {
                "operationId": "get_task",
                "summary": "A task's result(s), or that it is still running",
                "parameters": [trace, wait],
                "responses": {
                    "200": _json("gateway.Task", "done: its result(s)"),
                    "202": _json("gateway.Task", "still running (no result yet)"),
                    "401": _problem("no valid bearer token"),
                    "404": _problem("no gateway of this mesh submitted it, or it was forgotten"),
                    "503": busy,
                },
            }
        },
        "/tasks/{trace}/events": {
            "get": {
                "operationId": "task_events",
                "summary": "A task's hops as server-sent events (hop, dead_letter, result)",
                "parameters": [trace],
                "responses": {
                    "200": {
                        "description": "one event per entry of the task; each event's data "
                        "is a gateway.Hop; the stream ends after the result",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": _problem("no valid bearer token"),
                    "404": _problem("no gateway of this mesh submitted it, or it was forgotten"),
                    "503": busy,
                },
            }
        },
    }


def document(mesh: MeshSpec, auth: bool = True) -> dict[str, Any]:
    """The whole document for ``mesh``; ``auth`` declares the bearer scheme."""
    intakes = {s: mesh.streams[s].model for s in mesh.intake_streams()}
    terminal = [mesh.streams[s].model for s in mesh.terminal_streams()]
    models = sorted({*intakes.values(), *terminal}, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    names = sorted({m.__name__ for m in terminal})
    results: dict[str, Any] = {"anyOf": [_ref(n) for n in names]} if names else {}
    paths: dict[str, Any] = {f"/tasks/{s}": _submit(s, m) for s, m in sorted(intakes.items())}
    paths.update(_task_paths())
    paths["/healthz"] = {
        "get": {
            "operationId": "health",
            "summary": "The gateway answers and reaches the server",
            "security": [],
            "responses": {"200": {"description": "ok"}, "503": _problem("server unreachable")},
        }
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{mesh.name} (meshc gateway)",
            "version": str(mesh.version),
            "description": f"Tasks in and results out of the mesh `{mesh.name}`.",
        },
        "paths": paths,
        "components": {"schemas": {**defs.get("$defs", {}), **gateway_schemas(results)}},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def dumps(mesh: MeshSpec, auth: bool = True) -> bytes:
    """The document as the gateway serves it: sorted keys, two-space indent."""
    return orjson.dumps(document(mesh, auth), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
