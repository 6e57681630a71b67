"""What the ``llm`` built-in keeps on the server: rate limits, a reply cache, counters.

All of it lives under the agent's private keys (``<mesh>:<agent>:llm:…`` plus the
partition tag, docs/design.md section 5), so the agent's ACL user reaches it and nothing
else does, and it is shared by every replica of the agent:

- one hash per agent holds two token buckets (requests and tokens per minute) and a
  ``hold`` time set when the provider answered 429, so that one replica's 429 pauses
  all of them. One script checks and takes from both buckets at once;
- one string per (input entry, request digest) holds the reply that was produced
  for it, with a TTL, so a redelivered message does not call the model again;
- one string per counter (calls, tokens, cache hits, errors) that ``meshc status``
  reads with MGET, as it reads the aggregators' ``late`` counters. They are strings
  rather than a hash so that the operator user needs no more than GET/MGET, and a
  script adds to them because the agent's user has INCR but not INCRBY.

Per-agent keys (buckets, counters) carry partition 0's tag: one key for the agent,
still legal on a cluster because every script here touches keys of a single tag.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from meshc.runtime import keys, scripts
from redis.asyncio import Redis

COUNTERS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cache_hits",
    "errors",
    "invalid_replies",
    "latency_ms",
)
REPLY_TTL = 86_400  # a day: far longer than any redelivery takes

# KEYS[1] the agent's bucket hash. ARGV[1] the mode:
#   take   ARGV[2] requests, ARGV[3] tokens, ARGV[4] rpm, ARGV[5] tpm (0: no limit)
#          -> 0 when both were taken, else the milliseconds to wait (nothing taken)
#   settle ARGV[2] tokens to give back (negative: take more), ARGV[3] tpm
#   hold   ARGV[2] milliseconds during which nobody takes (the provider said 429)
# A bucket holds at most one minute's allowance and refills continuously, as the
# providers' own limits do; a missing bucket is full.
BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, mode = KEYS[1], ARGV[1]
local function level(name, limit)
  local have = redis.call('HGET', key, name)
  if not have then return limit end
  local at = tonumber(redis.call('HGET', key, name .. '_at'))
  return math.min(limit, tonumber(have) + (now - at) * limit / 60000)
end
local function save(name, value)
  redis.call('HSET', key, name, string.format('%.6f', value), name .. '_at', now)
end
if mode == 'hold' then
  local hold, untl = tonumber(redis.call('HGET', key, 'hold') or '0'), now + tonumber(ARGV[2])
  if untl > hold then redis.call('HSET', key, 'hold', string.format('%d', untl)) end
  return 0
end
if mode == 'settle' then
  local limit = tonumber(ARGV[3])
  if limit > 0 then save('tok', math.min(limit, level('tok', limit) + tonumber(ARGV[2]))) end
  return 0
end
local hold = tonumber(redis.call('HGET', key, 'hold') or '0')
if hold > now then return hold - now end
local wait, after = 0, {}
for i, name in ipairs({'req', 'tok'}) do
  local limit = tonumber(ARGV[3 + i])
  if limit > 0 then
    local need = math.min(tonumber(ARGV[1 + i]), limit)
    local have = level(name, limit)
    after[name] = have - need
    if have < need then wait = math.max(wait, math.ceil((need - have) * 60000 / limit)) end
  end
end
if wait > 0 then return wait end
for name, value in pairs(after) do save(name, value) end
return 0
"""

# KEYS: counters; ARGV: the amount to add to each. GET and SET only (see above).
ADD = """
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[i])
  if n ~= 0 then
    local total = tonumber(redis.call('GET', key) or '0') + n
    redis.call('SET', key, string.format('%d', total))
  end
end
return 0
"""

bucket = scripts.Script(BUCKET)
add_counters = scripts.Script(ADD)


def agent_key(mesh: str, agent: str, what: str, partitions: int) -> str:
    """A per-agent private key (partition 0's tag)."""
    return keys.private_key(mesh, agent, f"llm:{what}", 0, partitions)


def counter_keys(mesh: str, agent: str, partitions: int) -> list[str]:
    """The counter keys of an agent, in the order of ``COUNTERS``."""
    return [agent_key(mesh, agent, name, partitions) for name in COUNTERS]


def totals(values: list[Any]) -> dict[str, int]:
    """Counters read back with MGET (missing ones are 0), by name."""
    return {name: int(v or 0) for name, v in zip(COUNTERS, values, strict=True)}


@dataclass(frozen=True)
class Limits:
    """Per-minute limits shared by every replica; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class SharedState:
    """The server side of one LLM agent: its bucket, reply cache and counters."""

    def __init__(self, redis: Redis, mesh: str, agent: str, partitions: int) -> None:
        self.redis = redis
        self.mesh = mesh
        self.agent = agent
        self.partitions = partitions
        self.bucket_key = agent_key(mesh, agent, "bucket", partitions)
        self.counter_keys = counter_keys(mesh, agent, partitions)

    async def take(self, limits: Limits, tokens: int) -> float:
        """Wait until one request of ``tokens`` fits the shared limits; seconds waited.

        The script answers how long until the buckets hold enough; a little jitter
        keeps replicas that wait for the same refill from asking at the same moment.
        """
        args = (
            "take",
            1,
            max(0, tokens),
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
        )
        waited = 0.0
        while True:
            wait_ms = int(await bucket(self.redis, [self.bucket_key], args))
            if wait_ms <= 0:
                return waited
            delay = wait_ms / 1000 * (1 + random.random() / 10)
            await asyncio.sleep(delay)
            waited += delay

    async def settle(self, limits: Limits, refund: int) -> None:
        """Give back tokens reserved but not used (or take the excess, as a debt)."""
        if limits.tokens_per_minute and refund:
            args = ("settle", refund, limits.tokens_per_minute)
            await bucket(self.redis, [self.bucket_key], args)

    async def hold(self, seconds: float) -> None:
        """Stop every replica from calling for ``seconds`` (the provider's Retry-After)."""
        await bucket(self.redis, [self.bucket_key], ("hold", max(1, int(seconds * 1000))))

    def reply_key(self, stream: str, entry_id: str, digest: str, partition: int) -> str:
        what = f"llm:reply:{stream}:{entry_id}:{digest}"
        return keys.private_key(self.mesh, self.agent, what, partition, self.partitions)

    async def cached(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.get(key)
        if raw is None:
            return None
        value = orjson.loads(raw)
        return value if isinstance(value, dict) else None

    async def remember(self, key: str, value: Mapping[str, Any]) -> None:
        await self.redis.set(key, orjson.dumps(value), ex=REPLY_TTL)

    async def count(self, **amounts: int) -> None:
        """Add to the agent's counters (names from ``COUNTERS``)."""
        unknown = set(amounts) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown LLM counters {sorted(unknown)}")
        await add_counters(self.redis, self.counter_keys, [amounts.get(n, 0) for n in COUNTERS])
