"""One chat completion under the agent's policy: limits, retries, timeouts, secrets.

Every attempt (first try, retry, repair) passes the same gates: the process-wide cap
on calls in flight (``max_concurrent``), then the limits shared with the other
replicas in the server (``store``). The ``openai`` client's own retries are off,
because a retry it makes on its own would skip both gates and the accounting.

Retried: 408, 409, 429, 5xx, timeouts and lost connections, with exponential backoff
and jitter, or after the server's ``Retry-After`` when it sends one (which also holds
every replica for that long). Other 4xx answers are not retried here. The API key is
scrubbed from every message this module raises, since some servers echo request
headers in their error bodies.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import openai
from meshc.runtime.errors import MeshRuntimeError, PermanentError
from meshc.runtime.llm.store import Limits, SharedState

RETRY_STATUSES = frozenset({408, 409, 429})
PERMANENT_STATUSES = frozenset({400, 404, 413, 422})  # the same request fails again
MAX_RETRY_AFTER = 120.0  # longer than this: give the message back instead of waiting
CHARS_PER_TOKEN = 4
COMPLETION_GUESS = 512  # reserved when max_tokens is not set; settled afterwards


class ModelUnavailable(MeshRuntimeError):
    """Raised when the model server failed past the agent's retries.

    An ordinary handler error: the message stays pending and is delivered again
    after ``visibility_timeout``, and dead-lettered past ``max_deliveries``.
    """


@dataclass(frozen=True)
class Backoff:
    """Delays between retries: ``base * 2**n`` up to ``cap``, less up to half (jitter)."""

    base: float = 0.5
    cap: float = 20.0

    def delay(self, retry: int) -> float:
        full: float = min(self.cap, self.base * 2.0**retry)
        return full * (0.5 + random.random() / 2)


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True)
class Completion:
    """What one successful request gave: the text and its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    ms: int


class ModelCaller:
    """Sends chat requests for one agent replica."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        state: SharedState,
        *,
        limits: Limits,
        retries: int,
        max_concurrent: int | None,
        secret: str | None,
        log: logging.Logger,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.limits = limits
        self.retries = retries
        self.gate = asyncio.Semaphore(max_concurrent) if max_concurrent else None
        self.secret = secret
        self.log = log
        self.backoff = backoff or DEFAULT_BACKOFF

    def redact(self, text: str) -> str:
        """``text`` without the API key."""
        return text.replace(self.secret, "***") if self.secret else text

    async def complete(self, body: dict[str, Any]) -> Completion:
        """The reply to ``body``, retried as the policy says."""
        for retry in range(self.retries + 1):
            try:
                if self.gate is None:
                    return await self._attempt(body)
                async with self.gate:
                    return await self._attempt(body)
            except _Retry as wanted:
                if retry == self.retries:
                    raise ModelUnavailable(
                        f"model server failed {self.retries + 1} times; last: {wanted.reason}"
                    ) from None
                delay = wanted.after if wanted.after is not None else self.backoff.delay(retry)
                self.log.warning(
                    "model call failed (%s); retry %d of %d in %.2f s",
                    wanted.reason,
                    retry + 1,
                    self.retries,
                    delay,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attempt(self, body: dict[str, Any]) -> Completion:
        reserved = estimate_tokens(body)
        await self.state.take(self.limits, reserved)
        started = time.monotonic()
        try:
            reply = await self.client.chat.completions.create(**body)
        except openai.APIError as exc:
            await self.state.count(calls=1, errors=1)
            raise await self._failure(exc) from None
        ms = int((time.monotonic() - started) * 1000)
        usage = reply.usage
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        await self.state.count(
            calls=1, prompt_tokens=prompt, completion_tokens=completion, latency_ms=ms
        )
        if usage is not None:
            await self.state.settle(self.limits, reserved - prompt - completion)
        text = reply.choices[0].message.content if reply.choices else None
        return Completion(text or "", prompt, completion, ms)

    async def _failure(self, exc: openai.APIError) -> Exception:
        """The exception to raise for a failed request, its message redacted."""
        reason = self.redact(describe(exc))
        if isinstance(exc, openai.APIConnectionError):  # timeouts included
            return _Retry(reason)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status in RETRY_STATUSES or status >= 500:
                after = retry_after(exc.response.headers)
                if after is not None:  # the server asked every client to wait
                    await self.state.hold(after)
                if after is not None and after > MAX_RETRY_AFTER:
                    return ModelUnavailable(f"{reason}; Retry-After {after:g} s is too long")
                return _Retry(reason, after)
            if status in PERMANENT_STATUSES:
                return PermanentError(f"model server refused the request: {reason}")
        return ModelUnavailable(reason)


class _Retry(Exception):
    """A failed attempt worth another: why, and how long the server asked us to wait."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


def describe(exc: openai.APIError) -> str:
    """A one-line account of a failed request (status, message; not the headers)."""
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (a number), else None."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: rare; fall back to our own backoff
    return None


def estimate_tokens(body: dict[str, Any]) -> int:
    """Tokens to reserve before a request: its text's length / 4, plus the answer."""
    chars = sum(len(m.get("content") or "") for m in body.get("messages", ()))
    answer = body.get("max_tokens") or COMPLETION_GUESS
    return chars // CHARS_PER_TOKEN + 1 + int(answer)
