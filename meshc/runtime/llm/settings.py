"""The ``llm`` built-in's settings as a worker reads them: the ``model`` block compiled
into an agent's spec, with the environment's overrides, and the API key from the
variable the mesh names. No import of ``openai`` here: ``meshc demo`` and the
commands use these without the client library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from meshc.runtime.errors import ConfigError
from meshc.runtime.llm.store import Limits
from meshc.runtime.spec import AgentSpec

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
