"""Server-side scripts: every state change of a worker is one of these.

Why scripts: the commit rule "outputs appear only if this XACK acknowledged the
input" must be atomic, and one script per batch is also the fastest loop measured
(docs/facts.md: 1.2-1.5x a MULTI/EXEC batch). Every key a script touches is passed in KEYS,
so ACLs and clusters see them; with P > 1 partitions the worker groups work so all
keys of one call share a partition tag. Re-running any of these scripts with the
same arguments is harmless (the XACK or the join's ``done`` marker gates every
write), which is why a commit may simply be retried after a lost connection.

Scripts are called by SHA only (EVALSHA): an agent's ACL user may not send a script
of its own (``EVAL "while true do end" 0`` would freeze the server), so its rules
grant ``+evalsha`` and no ``+eval`` or ``+script|load``. A server that answers NOSCRIPT
(its script cache is empty after a restart or a ``SCRIPT FLUSH``) gets the script with
SCRIPT LOAD when this user may load it (no ACLs); when it may not, the call raises
:class:`ScriptsNotLoaded`, which workers wait out like an outage until the operator
(``meshc run --acl``) has loaded the project's scripts again (:func:`registered`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

from meshc.runtime import wire
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, NoScriptError

Arg = bytes | str | int | float
RETRY_CONSUMER = "meshc:retry"  # holds failed entries until their retry is due

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# ARGV[1] group, ARGV[2] agent, ARGV[3] n: then n header fields (name value ...) that
# every output carries (the writer's schema), then records:
#   'r' in out attempt n (id trace data took)*n   a run of inputs with one output each,
#                                                all from key `in` to key `out`: the
#                                                common case, 4 arguments a message
#   'o' in id trace attempt took n (out data)*n   outputs with the standard header
#   'h' in id trace attempt took nh (name value)*nh n (out data)*n
#                                                the same plus header fields of this
#                                                input's own (LLM accounting, ...)
#   'f' in id n (out nf field value ...)*n         free-form entries (dead letters, acks)
#   'p' in id me                                   a failed call: hand the entry to the
#                                                retry consumer (if `me` still holds it),
#                                                counting no delivery; nothing is acked
# `took` is the handler's time in ms, or '' (under a millisecond: no field).
# Returns {acked, skipped}: skipped inputs were no longer pending (another replica won).
COMMIT = """
local group, agent = ARGV[1], ARGV[2]
local extra = {}
for j = 1, 2 * tonumber(ARGV[3]) do extra[j] = ARGV[3 + j] end
local function add(dst, data, trace, id, attempt, took)
  if took == '' then
    redis.call('XADD', dst, '*', '@DATA', data, '@TRACE', trace, '@PARENT', id,
      '@AGENT', agent, '@ATTEMPT', attempt, unpack(extra))
  else
    redis.call('XADD', dst, '*', '@DATA', data, '@TRACE', trace, '@PARENT', id,
      '@AGENT', agent, '@ATTEMPT', attempt, '@TOOK', took, unpack(extra))
  end
end
local function add_with(dst, data, trace, id, attempt, took, own)
  local f = {'@DATA', data, '@TRACE', trace, '@PARENT', id, '@AGENT', agent,
    '@ATTEMPT', attempt}
  if took ~= '' then f[#f + 1] = '@TOOK'; f[#f + 1] = took end
  for _, v in ipairs(extra) do f[#f + 1] = v end
  for _, v in ipairs(own) do f[#f + 1] = v end
  redis.call('XADD', dst, '*', unpack(f))
end
local i, n = 4 + 2 * tonumber(ARGV[3]), #ARGV
local acked, skipped = 0, 0
while i <= n do
  local kind = ARGV[i]
  if kind == 'r' then
    local src, dst = KEYS[tonumber(ARGV[i+1])], KEYS[tonumber(ARGV[i+2])]
    local attempt, count = ARGV[i+3], tonumber(ARGV[i+4])
    i = i + 5
    for _ = 1, count do
      local id = ARGV[i]
      if redis.call('XACK', src, group, id) == 1 then
        add(dst, ARGV[i+2], ARGV[i+1], id, attempt, ARGV[i+3])
        acked = acked + 1
      else
        skipped = skipped + 1
      end
      i = i + 4
    end
  elseif kind == 'p' then
    local src, id = KEYS[tonumber(ARGV[i+1])], ARGV[i+2]
    local row = redis.call('XPENDING', src, group, id, id, 1)[1]
    if row and row[2] == ARGV[i+3] then
      redis.call('XCLAIM', src, group, '@RETRY', 0, id, 'JUSTID')
    end
    i = i + 4
  else
    local id = ARGV[i+2]
    local ok = redis.call('XACK', KEYS[tonumber(ARGV[i+1])], group, id)
    if kind == 'o' then
      local trace, attempt, took, nout = ARGV[i+3], ARGV[i+4], ARGV[i+5], tonumber(ARGV[i+6])
      i = i + 7
      for _ = 1, nout do
        if ok == 1 then
          add(KEYS[tonumber(ARGV[i])], ARGV[i+1], trace, id, attempt, took)
        end
        i = i + 2
      end
    elseif kind == 'h' then
      local trace, attempt, took, nh = ARGV[i+3], ARGV[i+4], ARGV[i+5], tonumber(ARGV[i+6])
      local own = {unpack(ARGV, i + 7, i + 6 + 2 * nh)}
      i = i + 7 + 2 * nh
      local nout = tonumber(ARGV[i])
      i = i + 1
      for _ = 1, nout do
        if ok == 1 then
          add_with(KEYS[tonumber(ARGV[i])], ARGV[i+1], trace, id, attempt, took, own)
        end
        i = i + 2
      end
    else
      local nout = tonumber(ARGV[i+3])
      i = i + 4
      for _ = 1, nout do
        local nf = tonumber(ARGV[i+1])
        if ok == 1 then
          redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', unpack(ARGV, i + 2, i + 1 + nf))
        end
        i = i + 2 + nf
      end
    end
    if ok == 1 then acked = acked + 1 else skipped = skipped + 1 end
  end
end
return {acked, skipped}
"""

# KEYS: input keys. ARGV[1] group, ARGV[2] consumer, then records: key n id*n.
# Resets the idle time of entries this consumer still holds (XCLAIM ... JUSTID, which
# counts no delivery), so a call that runs longer than `visibility_timeout` is not
# taken over by another replica while this one is alive. An entry another consumer
# took meanwhile is left alone. Returns the ids no longer held.
KEEPALIVE = """
local group, me = ARGV[1], ARGV[2]
local lost = {}
local i = 3
while i <= #ARGV do
  local key, n = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i+1])
  for j = i + 2, i + 1 + n do
    local row = redis.call('XPENDING', key, group, ARGV[j], ARGV[j], 1)[1]
    if row and row[2] == me then
      redis.call('XCLAIM', key, group, me, 0, ARGV[j], 'JUSTID')
    else
      lost[#lost + 1] = ARGV[j]
    end
  end
  i = i + 2 + n
end
return lost
"""

# Join hashes hold one field per lane plus three meta fields: .trace, .parent, .fails,
# a fourth, .lanes, when the partials named the lanes their task was sent to, and
# while tracing a fifth, .links. @LANES is the number of lanes stored.
JOIN_META = 3
_LANES = (
    "(redis.call('HLEN', hash) - @META - redis.call('HEXISTS', hash, '.lanes')"
    " - redis.call('HEXISTS', hash, '.links'))"
)

# KEYS[1] deadlines zset, KEYS[2] late counter, then inputs and join hash/done keys.
# ARGV[1] group, ARGV[2] lanes, ARGV[3] timeout ms, then records:
#   in id hash done join_id lane data trace need expected traceparent
# `need` is how many lanes complete this join: those in `expected` (the lanes its task
# was sent to, comma-separated; kept as .lanes), else the aggregator's own count. A
# non-empty traceparent (tracing is on) is appended to the hash's `.links` field, so
# the merge's span can link every partial's; neither field is a lane (@LANES counts).
# Returns {late, stale, {join_id, hgetall, ...}} for joins this call completed.
JOIN_STORE = (
    _NOW_MS
    + """
local group, timeout = ARGV[1], tonumber(ARGV[3])
local complete, late, stale = {}, 0, 0
for i = 4, #ARGV, 11 do
  local hash, done, jid = KEYS[tonumber(ARGV[i+2])], KEYS[tonumber(ARGV[i+3])], ARGV[i+4]
  if redis.call('XACK', KEYS[tonumber(ARGV[i])], group, ARGV[i+1]) == 0 then
    stale = stale + 1
  elseif redis.call('EXISTS', done) == 1 then
    redis.call('INCR', KEYS[2])
    late = late + 1
  else
    redis.call('HSET', hash, ARGV[i+5], ARGV[i+6], '.trace', ARGV[i+7], '.parent', ARGV[i+1])
    redis.call('HSETNX', hash, '.fails', '0')
    if ARGV[i+9] ~= '' then redis.call('HSETNX', hash, '.lanes', ARGV[i+9]) end
    if ARGV[i+10] ~= '' then
      local links = redis.call('HGET', hash, '.links') or ''
      redis.call('HSET', hash, '.links', links .. ARGV[i+10] .. ' ')
    end
    redis.call('ZADD', KEYS[1], 'NX', now + timeout, jid)
    if @LANES >= tonumber(ARGV[i+8]) then
      complete[#complete + 1] = jid
      complete[#complete + 1] = redis.call('HGETALL', hash)
    end
  end
end
return {late, stale, complete}
"""
)

# KEYS[1] deadlines zset, then hash/done/output keys. ARGV[1] agent, ARGV[2] done ttl s,
# ARGV[3] n, then n header fields as in COMMIT, then records:
#   hash done join_id expected trace parent attempt took traceparent n (out data)*n
# (traceparent: the merge span's, written on the result while tracing; else '').
# Emits only when the join is not done and still holds exactly `expected` parts, so
# the result reflects what was stored and appears once however many replicas race.
JOIN_EMIT = """
local agent, ttl = ARGV[1], ARGV[2]
local extra = {}
for j = 1, 2 * tonumber(ARGV[3]) do extra[j] = ARGV[3 + j] end
local statuses = {}
local i = 4 + 2 * tonumber(ARGV[3])
while i <= #ARGV do
  local hash, done, jid = KEYS[tonumber(ARGV[i])], KEYS[tonumber(ARGV[i+1])], ARGV[i+2]
  local trace, parent, attempt, took = ARGV[i+4], ARGV[i+5], ARGV[i+6], ARGV[i+7]
  local tp, nout = ARGV[i+8], tonumber(ARGV[i+9])
  local status = 'emitted'
  if redis.call('EXISTS', done) == 1 then
    status = 'done'
    redis.call('ZREM', KEYS[1], jid)
  elseif @LANES ~= tonumber(ARGV[i+3]) then
    status = 'changed'
  else
    redis.call('SET', done, '1', 'EX', ttl)
    redis.call('DEL', hash)
    redis.call('ZREM', KEYS[1], jid)
  end
  i = i + 10
  for _ = 1, nout do
    if status == 'emitted' then
      local f = {'@DATA', ARGV[i+1], '@TRACE', trace, '@PARENT', parent, '@AGENT', agent,
        '@ATTEMPT', attempt}
      if took ~= '' then f[#f + 1] = '@TOOK'; f[#f + 1] = took end
      if tp ~= '' then f[#f + 1] = '@TRACEPARENT'; f[#f + 1] = tp end
      for _, v in ipairs(extra) do f[#f + 1] = v end
      redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', unpack(f))
    end
    i = i + 2
  end
  statuses[#statuses + 1] = status
end
return statuses
"""

# KEYS: deadlines, hash, done, dlq. ARGV: join_id max_deliveries retry_ms ttl, dlq fields...
# A merge handler failed: retry the join later, or dead-letter it past max_deliveries.
JOIN_FAIL = (
    _NOW_MS
    + """
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local fails = redis.call('HINCRBY', KEYS[2], '.fails', 1)
if fails >= tonumber(ARGV[2]) then
  redis.call('XADD', KEYS[4], '*', 'deliveries', fails, unpack(ARGV, 5))
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 2
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS[1] deadlines zset; ARGV[1] limit. Joins whose deadline passed, by server time.
JOIN_DUE = (
    _NOW_MS
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
"""
)


def _lua(source: str) -> str:
    """The script with its placeholders filled: the wire format's field names (defined
    once, in ``wire``), the retry consumer's name and the join's meta field count."""
    names = {  # @TRACEPARENT before @TRACE, which is its prefix
        "@TRACEPARENT": wire.TRACEPARENT, "@DATA": wire.DATA, "@TRACE": wire.TRACE,
        "@PARENT": wire.PARENT, "@AGENT": wire.AGENT, "@ATTEMPT": wire.ATTEMPT,
        "@TOOK": wire.TOOK,
    }  # fmt: skip
    for placeholder, name in names.items():
        source = source.replace(placeholder, name.decode())
    source = source.replace("@LANES", _LANES)
    return source.replace("@RETRY", RETRY_CONSUMER).replace("@META", str(JOIN_META))


class ScriptsNotLoaded(Exception):
    """The server has lost a script (restart, SCRIPT FLUSH) and this user may not load
    it: a wait, not a failure, until the operator loads the project's scripts again."""


_REGISTERED: list[Script] = []
# Clients whose user was refused SCRIPT LOAD once: not asked again (each refusal is an
# entry in the server's ACL LOG).
_REFUSED: weakref.WeakSet[Any] = weakref.WeakSet()


class Script:
    """A Lua source with its SHA1, called by EVALSHA only; loaded on NOSCRIPT when the
    user may (see the module docstring). Every instance is registered, so the operator
    can load all of them (:func:`registered`)."""

    def __init__(self, source: str) -> None:
        source = _lua(source)
        assert "@" not in source, "a placeholder left in a script"
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        _REGISTERED.append(self)

    async def __call__(self, client: Redis, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(client)
            return await client.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self, client: Redis) -> None:
        """SCRIPT LOAD this script (on every primary of a cluster), or raise
        :class:`ScriptsNotLoaded` when this user may not: then only the operator can."""
        if client not in _REFUSED:
            try:
                await client.script_load(self.source)
                return
            except NoPermissionError:
                _REFUSED.add(client)
        raise ScriptsNotLoaded(
            f"the server has no script {self.sha[:12]} (restarted, or its scripts were "
            "flushed) and this user may not load it; waiting for the operator to load "
            "the mesh's scripts (meshc run --acl does it within seconds)"
        )

    async def many(
        self, client: Redis, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]]
    ) -> list[Any]:
        """Run several calls (one per partition) in one round trip.

        A call refused with NOSCRIPT did not run at all, so it is simply repeated.
        """
        if len(calls) == 1:
            return [await self(client, *calls[0])]
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        for n, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                replies[n] = await self(client, *calls[n])
            elif isinstance(reply, Exception):
                raise reply
        return list(replies)


commit = Script(COMMIT)
keepalive = Script(KEEPALIVE)
join_store = Script(JOIN_STORE)
join_emit = Script(JOIN_EMIT)
join_fail = Script(JOIN_FAIL)
join_due = Script(JOIN_DUE)


def registered() -> list[Script]:
    """Every script made so far: this module's, and those of modules imported since
    (the LLM agents' ``meshc.runtime.llm.store``)."""
    return list(_REGISTERED)


class ScriptCall:
    """The KEYS and ARGV of one script call, with keys numbered as they are added.

    Records refer to keys by their 1-based index, so a key used by many records of a
    batch is sent once.
    """

    __slots__ = ("keys", "args", "_index")

    def __init__(self, head: Sequence[Arg], keys: Sequence[bytes] = ()) -> None:
        self.keys: list[bytes] = []
        self.args: list[Arg] = list(head)
        self._index: dict[bytes, int] = {}
        for key in keys:
            self.key(key)

    def key(self, key: bytes) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index
