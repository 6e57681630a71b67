"""The ``llm`` built-in handler: an agent whose work is one chat completion.

For each input message: render the agent's prompt template over the payload, ask an
OpenAI-compatible server (``openai.AsyncOpenAI`` with the mesh's ``base_url``), and
parse the reply into the output stream's type. A reply that does not parse gets one
repair turn (the error is sent back); a second bad reply dead-letters the message
with the raw replies in the error. Calls are capped and rate-limited per agent
(``llm_call``, ``llm_store``), and the parsed reply is cached under the input entry's
id and the request's hash, so a message delivered twice calls the model once and
writes the same output.

Accounting: every output carries header fields ``llm_model``, ``llm_calls``,
``llm_prompt_tokens``, ``llm_completion_tokens``, ``llm_tokens``, ``llm_ms`` and
``llm_cached``; per-agent totals are counters that ``meshc status`` shows.

The API key is read from the environment variable that ``model.api_key_env`` names,
never from the mesh file, and is scrubbed from every error this handler raises.
``MESHC_LLM_BASE_URL`` and ``MESHC_LLM_MODEL`` point every LLM agent of a compiled
mesh at another server or model without recompiling (``demo_overrides``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import openai
from jinja2 import TemplateError
from meshc.runtime.context import Context
from meshc.runtime.errors import ConfigError, PermanentError
from meshc.runtime.lane import Lane
from meshc.runtime.llm_call import Completion, ModelCaller
from meshc.runtime.llm_prompt import Prompt, ReplyError, clip, digest
from meshc.runtime.llm_store import Limits, SharedState
from meshc.runtime.spec import AgentSpec
from pydantic import BaseModel

BASE_URL_ENV = "MESHC_LLM_BASE_URL"
MODEL_ENV = "MESHC_LLM_MODEL"
DEMO_KEY_ENV = "MESHC_LLM_API_KEY"  # what meshes/doc_review_llm.yaml names
NO_KEY = "none"  # sent when the mesh names no key variable (local servers ignore it)
MIN_SECRET = 8  # shorter "keys" are placeholders; scrubbing them would garble messages
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class LlmSettings:
    """An agent's ``model`` settings as the runtime reads them (``meshc.model.ModelSettings``)."""

    name: str
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int | None = None
    request_timeout: float = 60.0
    retries: int = 3
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    structured_output: bool = True

    @classmethod
    def of(cls, spec: AgentSpec, environ: Mapping[str, str]) -> LlmSettings:
        """The settings compiled into ``spec``, with the environment's overrides applied."""
        raw = spec.settings.get("model")
        if not isinstance(raw, Mapping) or not raw.get("name"):
            raise ConfigError(f"agent {spec.name!r} has `handler: llm` but no `model` settings")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["request_timeout"] = seconds(values.get("request_timeout", 60.0))
        values["base_url"] = environ.get(BASE_URL_ENV) or values.get("base_url", cls.base_url)
        values["name"] = environ.get(MODEL_ENV) or values["name"]
        return cls(**values)

    @property
    def limits(self) -> Limits:
        return Limits(self.requests_per_minute, self.tokens_per_minute)


def seconds(value: Any) -> float:
    """A compiled duration (``"60s"``, ``"500ms"`` or a number) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for unit in ("ms", "s", "m", "h"):
        number = text.removesuffix(unit)
        if number != text:
            try:
                return float(number) * _UNITS[unit]
            except ValueError:
                break
    raise ConfigError(f"{value!r} is not a duration")


def api_key(spec: AgentSpec, settings: LlmSettings, environ: Mapping[str, str]) -> str | None:
    """The key from the variable named by ``api_key_env``; None when none is named."""
    if settings.api_key_env is None:
        return None
    key = environ.get(settings.api_key_env)
    if not key:
        raise ConfigError(
            f"agent {spec.name!r}: the environment variable {settings.api_key_env} "
            "(its model.api_key_env) is not set; set it to the model server's API key"
        )
    return key


def demo_overrides(
    url: str, model: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for workers of ``meshes/doc_review_llm.yaml`` served by ``url``/``model``.

    Add the result to the workers' environment (it overrides every LLM agent's
    ``base_url`` and model name). When ``MESHC_LLM_API_KEY`` is not set, a placeholder
    is, since local servers need no key; a set key is left alone, never copied.
    """
    env = {BASE_URL_ENV: url, MODEL_ENV: model}
    if not (os.environ if environ is None else environ).get(DEMO_KEY_ENV):
        env[DEMO_KEY_ENV] = NO_KEY
    return env


class LlmHandler:
    """The ``llm`` handler bound to one worker (made by ``builtins.Llm.bind``)."""

    def __init__(self, host: Lane, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        spec = host.spec
        if len(spec.writes) != 1:
            raise ConfigError(
                f"agent {spec.name!r}: `handler: llm` writes exactly one stream, "
                f"not {len(spec.writes)}"
            )
        template = spec.settings.get("prompt")
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(f"agent {spec.name!r} has `handler: llm` but no `prompt`")
        self.host = host
        self.settings = LlmSettings.of(spec, environ)
        self.prompt = Prompt(spec.name, template, host.out_models[spec.writes[0]])
        self._key = api_key(spec, self.settings, environ)
        self._client: openai.AsyncOpenAI | None = None
        self._caller: ModelCaller | None = None
        self._state: SharedState | None = None

    async def __call__(self, payload: Any, ctx: Context) -> Any:
        caller, state = self._ready()
        try:
            text = self.prompt.render(payload)
        except TemplateError as exc:
            raise PermanentError(f"the prompt cannot be rendered for this payload: {exc}") from None
        body = self.body(text)
        key = state.reply_key(ctx.stream, ctx.entry_id, digest(body), ctx.partition)
        record = await state.cached(key)
        cached = record is not None
        if record is None:
            record = await self._ask(caller, state, body)
            await state.remember(key, record)
        else:
            await state.count(cache_hits=1)
        self._annotate(ctx, record, cached)
        return record["output"]

    def body(self, text: str) -> dict[str, Any]:
        """The chat request for one rendered prompt."""
        s = self.settings
        structured = s.structured_output
        body: dict[str, Any] = {
            "model": s.name,
            "messages": self.prompt.messages(text, structured),
            "temperature": s.temperature,
        }
        if s.max_tokens is not None:
            body["max_tokens"] = s.max_tokens
        if structured:
            body["response_format"] = self.prompt.response_format()
        return body

    async def aclose(self) -> None:
        """Close the HTTP client (the worker calls this when it stops)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _ready(self) -> tuple[ModelCaller, SharedState]:
        """The caller and server state, made on the first message (the worker's
        Redis client exists only once it runs)."""
        if self._caller is None or self._state is None:
            s, host = self.settings, self.host
            self._client = openai.AsyncOpenAI(
                api_key=self._key or NO_KEY,
                base_url=s.base_url,
                timeout=s.request_timeout,
                max_retries=0,
            )
            mesh = host.mesh
            self._state = SharedState(host.redis, mesh.name, host.spec.name, mesh.partitions)
            secret = self._key if self._key and len(self._key) >= MIN_SECRET else None
            self._caller = ModelCaller(
                self._client,
                self._state,
                limits=s.limits,
                retries=s.retries,
                max_concurrent=s.max_concurrent,
                secret=secret,
                log=host.log,
            )
        return self._caller, self._state

    async def _ask(
        self, caller: ModelCaller, state: SharedState, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Call, parse, and repair once; the record that is cached and emitted."""
        first = await caller.complete(body)
        replies = [first]
        try:
            output = self.prompt.parse(first.text)
        except ReplyError as error:
            await state.count(invalid_replies=1)
            self.host.log.warning("model reply does not parse (%s); asking again", error)
            repair = [*body["messages"], *self.prompt.repair(first.text, error)]
            second = await caller.complete({**body, "messages": repair})
            replies.append(second)
            try:
                output = self.prompt.parse(second.text)
            except ReplyError as again:
                await state.count(invalid_replies=1)
                raise PermanentError(caller.redact(_rejected(again, replies))) from None
        return _record(output, replies)

    def _annotate(self, ctx: Context, record: Mapping[str, Any], cached: bool) -> None:
        prompt, completion = record["prompt_tokens"], record["completion_tokens"]
        for name, value in (
            ("llm_model", self.settings.name),
            ("llm_calls", record["calls"]),
            ("llm_prompt_tokens", prompt),
            ("llm_completion_tokens", completion),
            ("llm_tokens", prompt + completion),
            ("llm_ms", record["ms"]),
            ("llm_cached", int(cached)),
        ):
            ctx.add_header(name, str(value))


def _rejected(error: ReplyError, replies: list[Completion]) -> str:
    """The dead letter's error: what is wrong, and the raw replies (clipped)."""
    raw = "; ".join(f"{n}: {clip(r.text, 600)!r}" for n, r in enumerate(replies, 1))
    return f"{error} (still, after one repair). Raw replies: {raw}"


def _record(output: BaseModel, replies: list[Completion]) -> dict[str, Any]:
    return {
        "output": output.model_dump(mode="json"),
        "calls": len(replies),
        "prompt_tokens": sum(r.prompt_tokens for r in replies),
        "completion_tokens": sum(r.completion_tokens for r in replies),
        "ms": sum(r.ms for r in replies),
    }
