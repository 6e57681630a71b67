"""The typed mesh: what a mesh file means, independent of files and terminals.

Frozen pydantic models with unknown keys forbidden. ``Mesh`` is the whole file in
its written form (shorthands included); ``meshc.expand`` turns it into the core
form that the checks, the renderers and the code generator read.

The records a big mesh has by the hundred thousand (streams, agents and their
policy) are pydantic dataclasses with slots rather than models: validated the same
way, but a third of the memory (no per-instance ``__dict__`` and set of the fields
given), which a 100,000-agent mesh feels in every later phase (BENCHMARKS.md).
"""

from __future__ import annotations

import re
from enum import StrEnum
from operator import attrgetter
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """``500ms``, ``30s``, ``2m``, ``1h`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(
        f"{value!r} is not a duration; write a number of seconds or a string with a "
        "unit: '500ms', '30s', '2m', '1h'"
    )


def _format_duration(seconds: float) -> str:
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(_format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"},
            ],
            "description": "seconds, or a string with a unit: 500ms, 30s, 2m, 1h",
        }
    ),
]

HANDLER_PATTERN = (
    r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*|fanout|merge|llm)$"
)
Handler = Annotated[str, Field(pattern=HANDLER_PATTERN)]
PositiveInt = Annotated[int, Field(ge=1)]


# The rules of every record: unknown keys refused, values coerced as YAML gives
# them, frozen. Models subclass ``_Strict``; the slotted records are declared
# ``@dataclass(frozen=True, slots=True, kw_only=True, config=_RULES)``, fields given
# by name so that a subclass may add a required field after the inherited defaults.
_RULES = ConfigDict(extra="forbid", strict=False)


class _Strict(BaseModel):
    model_config = ConfigDict(**_RULES, frozen=True)


class Role(StrEnum):
    producer = "producer"
    coordinator = "coordinator"
    specialist = "specialist"
    aggregator = "aggregator"
    sink = "sink"


class Retention(_Strict):
    """How much of a stream to keep. Trimming never drops unacknowledged entries."""

    maxlen: PositiveInt | None = None
    max_age: Duration | None = None


@dataclass(frozen=True, slots=True, kw_only=True, config=_RULES)
class Stream:
    type: str = Field(description="name of the message type (a key of `types`)")
    description: str = ""
    retention: Retention | None = None
    terminal: bool = Field(default=False, description="callers read this stream, not an agent")
    max_backlog: PositiveInt | None = Field(
        default=None, description="intake backpressure: submit refuses above this backlog"
    )


@dataclass(frozen=True, slots=True, kw_only=True, config=_RULES)
class Policy:
    """Delivery policy; `defaults` holds one for every agent, agents override it.

    Agents and lane-family agent templates carry the same fields (they subclass it).
    """

    replicas: PositiveInt | None = None
    concurrency: PositiveInt | None = None
    batch: PositiveInt | None = None
    timeout: Duration | None = None
    max_deliveries: PositiveInt | None = None
    visibility_timeout: Duration | None = None
    max_payload_bytes: PositiveInt | None = None


POLICY_DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "concurrency": 1,
    "batch": 100,
    "timeout": 300.0,  # every call has a deadline (README, "Deadlines")
    "max_deliveries": 5,
    "visibility_timeout": 30.0,
    "max_payload_bytes": 1_048_576,
}


class Join(_Strict):
    on: list[str] = Field(min_length=1, description="key fields shared by every partial")
    timeout: Duration = Field(30.0, description="emit with `missing` lanes after this")


class ModelSettings(_Strict):
    """An OpenAI-compatible chat-completions endpoint; the key comes from the env."""

    name: str = Field(description="model name sent to the server")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable with the key"
    )
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: PositiveInt | None = None
    request_timeout: Duration = 60.0
    retries: Annotated[int, Field(ge=0)] = 3
    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None
    max_concurrent: PositiveInt | None = None
    structured_output: bool = True


@dataclass(frozen=True, slots=True, kw_only=True, config=_RULES)
class Agent(Policy):
    role: Role
    description: str = ""
    reads: list[str] = Field(default_factory=list)
    writes: list[str] = Field(default_factory=list)
    handler: Handler | None = None
    deterministic: bool = True
    join: Join | None = None
    model: ModelSettings | None = None
    prompt: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, config=_RULES)
class LaneAgent(Policy):
    """The specialist template of a lane family; `{lane}` is replaced per lane."""

    name: str = Field(
        default="{lane}", description="agent name template, e.g. `{lane}` or `slot_{lane}`"
    )
    role: Role = Role.specialist
    description: str = ""
    handler: str | None = None
    deterministic: bool = True
    model: ModelSettings | None = None
    prompt: str | None = None


class LaneStream(_Strict):
    stream: str = Field(description="stream name template with `{lane}`")
    type: str
    description: str = ""
    retention: Retention | None = None


class LaneFamily(_Strict):
    """Shorthand for N homogeneous lanes: one input stream, agent, output stream each.

    Give `names` (a lane family) or `count` (N parallel slots named 0..N-1).
    `reads`/`writes` entries `@family.input` and `@family.output` expand to the
    family's streams.
    """

    names: list[str] | None = None
    count: PositiveInt | None = None
    input: LaneStream
    output: LaneStream
    agent: LaneAgent = Field(default_factory=lambda: LaneAgent())


class Mesh(_Strict):
    """A mesh file (docs/design.md section 3)."""

    mesh: str = Field(
        pattern=r"^[a-z_][a-z0-9_]*$",
        max_length=64,
        description="identifier of the mesh (lowercase letters, digits, `_`)",
    )
    version: Annotated[int, Field(ge=0)] = Field(1, description="the mesh's own version")
    description: str = ""
    types: dict[str, dict[str, str]] = Field(default_factory=dict)
    streams: dict[str, Stream] = Field(default_factory=dict)
    agents: dict[str, Agent] = Field(default_factory=dict)
    lanes: dict[str, LaneFamily] = Field(default_factory=dict)
    defaults: Policy = Field(default_factory=Policy)
    partitions: PositiveInt = 1
    partition_key: str | None = None


POLICY_FIELDS = tuple(POLICY_DEFAULTS)
_policy_of = attrgetter(*POLICY_FIELDS)
_UNSET = (None,) * len(POLICY_FIELDS)


def effective_policy(
    agent: Policy, defaults: Policy, shared: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The agent's policy: its own value, else the mesh default, else meshc's.

    ``shared``, the policy of an agent that sets none of its own (every policy field
    None: ``effective_policy(Policy(), defaults)``), is returned as it is for such
    agents: one dict for the thousands of agents of a big mesh that keep the
    defaults. Nothing mutates it.
    """
    if shared is not None and _policy_of(agent) == _UNSET:
        return shared
    out: dict[str, Any] = {}
    for name in POLICY_FIELDS:
        value = getattr(agent, name)
        if value is None:
            value = getattr(defaults, name)
        out[name] = POLICY_DEFAULTS[name] if value is None else value
    return out


def json_schema() -> dict[str, Any]:
    schema = Mesh.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://meshc.dev/schemas/mesh.schema.json"
    schema["title"] = "meshc mesh file"
    return schema
