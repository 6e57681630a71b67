"""From a payload to a chat request, and from a reply back to a typed payload.

The prompt is a Jinja template from the mesh file, rendered in a sandbox with
``StrictUndefined``: a mesh file may come from someone else, so its template must not
reach Python internals, and a misspelt field must fail loudly rather than send the
model an empty string. The reply must fit the output stream's type; its JSON Schema
goes to servers that support structured output (``response_format`` json_schema) and
into the system message for those that do not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from meshc.runtime.context import Joined
from meshc.runtime.errors import ConfigError
from pydantic import BaseModel, ValidationError

Message = dict[str, str]
MAX_ERROR_CHARS = 1500


class ReplyError(ValueError):
    """Raised when a model's reply is not JSON or does not fit the output type."""


class Prompt:
    """One agent's prompt template and output type, turned into request bodies."""

    def __init__(self, agent: str, template: str, output: type[BaseModel]) -> None:
        env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        try:
            self.template = env.from_string(template)
        except TemplateError as exc:
            raise ConfigError(f"agent {agent!r}: its prompt is no valid template: {exc}") from exc
        self.output = output
        self.schema = output.model_json_schema()
        self.schema_text = orjson.dumps(self.schema).decode()

    def render(self, payload: Any) -> str:
        """The prompt for one payload; raises ``TemplateError`` (e.g. an undefined name)."""
        data = variables(payload)
        return self.template.render({"input": data, "output_schema": self.schema_text, **data})

    def messages(self, text: str, structured: bool) -> list[Message]:
        system = "Reply with one JSON object and nothing else: no prose, no code fences."
        if not structured:
            system += f" It must fit this JSON Schema: {self.schema_text}"
        return [{"role": "system", "content": system}, {"role": "user", "content": text}]

    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` of a structured-output request.

        ``strict`` only when the schema meets the strict rules (every property
        required, no open objects such as ``dict[str, T]``); servers reject a strict
        request whose schema does not.
        """
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.output.__name__[:64],
                "schema": self.schema,
                "strict": is_strict(self.schema),
            },
        }

    def parse(self, reply: str) -> BaseModel:
        """The reply as the output type; raises ``ReplyError`` saying what is wrong."""
        try:
            value = orjson.loads(_json_part(reply))
        except orjson.JSONDecodeError as exc:
            raise ReplyError(f"the reply is not valid JSON ({exc})") from None
        try:
            return self.output.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ReplyError(f"the reply does not fit {self.output.__name__}: {problems}") from None

    def repair(self, reply: str, error: ReplyError) -> list[Message]:
        """The turn that sends the error back and asks once more."""
        return [
            {"role": "assistant", "content": reply},
            {
                "role": "user",
                "content": f"That reply cannot be used: {error}. Reply again with only one "
                f"JSON object that fits this JSON Schema: {self.schema_text}",
            },
        ]


def variables(payload: Any) -> dict[str, Any]:
    """The template's names: the payload's fields (a join: its key, parts, missing)."""
    if isinstance(payload, Joined):
        return {
            **payload.key,
            "parts": {lane: p.model_dump(mode="json") for lane, p in payload.parts.items()},
            "missing": list(payload.missing),
        }
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    if isinstance(payload, Mapping):
        return dict(payload)
    return {"value": payload}


def digest(body: Mapping[str, Any]) -> str:
    """A short hash of a whole request: a new prompt or model means a new reply."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def is_strict(schema: Any) -> bool:
    """True when every object in the schema is closed and requires all its properties."""
    if isinstance(schema, list):
        return all(is_strict(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required", ())) != set(props):
            return False
    return all(is_strict(v) for k, v in schema.items() if k != "properties") and all(
        is_strict(v) for v in schema.get("properties", {}).values()
    )


def _json_part(reply: str) -> str:
    """The JSON in a reply, forgiving code fences or a sentence around one object."""
    text = reply.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    start, end = text.find("{"), text.rfind("}")
    if start > 0 and end > start and not text.startswith("["):
        return text[start : end + 1]
    return text


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """A bounded excerpt for error messages (dead letters stay small)."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"
