"""The ``llm`` built-in handler: an agent whose work is one chat completion.

For each input message: render the agent's prompt template over the payload, ask an
OpenAI-compatible server (``openai.AsyncOpenAI`` with the mesh's ``base_url``), and
parse the reply into the output stream's type. A reply that does not parse gets one
repair turn (the error is sent back); a second bad reply dead-letters the message
with the raw replies in the error. Calls are capped and rate-limited per agent
(``call``, ``store``), and the parsed reply is cached under the input entry's
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
from typing import Any

import openai
from jinja2 import TemplateError
from meshc.runtime.context import Context
from meshc.runtime.errors import ConfigError, PermanentError
from meshc.runtime.lane import Lane
from meshc.runtime.llm.call import Completion, ModelCaller
from meshc.runtime.llm.prompt import Prompt, ReplyError, clip, digest
from meshc.runtime.llm.settings import MIN_SECRET, NO_KEY, LlmSettings, api_key
from meshc.runtime.llm.store import SharedState
from pydantic import BaseModel


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
