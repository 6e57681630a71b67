"""Retention: trim streams to their ``maxlen``/``max_age`` without losing work.

XTRIM on its own removes entries that a group still holds pending (the pending list
keeps a dangling id, and XAUTOCLAIM later drops it silently), and entries a group
has not read yet. So every trim is one server-side script that looks at the groups
and the stream in the same step: it removes the oldest entries the policy wants gone
(over ``maxlen``, or older than ``max_age`` by their entry id's time) but stops at
the first entry some group has not finished, that is, at the lowest of each group's
oldest pending entry and the entry after its last-delivered one. A declared reader
whose group does not exist yet stops everything: it will read from the first entry.

The same script counts what it removed, and notes what stopped it, in a small hash
per stream key (:func:`meshc.runtime.keys.retention_record`), which ``meshc status``
shows. ``meshc trim`` runs one pass; :mod:`meshc.runtime.process.retention_loop` runs passes
in the background of ``meshc run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from meshc.runtime import keys
from meshc.runtime.connect import using
from meshc.runtime.keys import stream_keys
from meshc.runtime.spec import MeshSpec, StreamSpec

TRIM_CHUNK = 10_000  # entries one script call removes at most: the server stays responsive
NO_HOLD = ("", "", "")

# KEYS[1] the stream key, KEYS[2] its retention record.
# ARGV[1] age cut id ('' without max_age), ARGV[2] maxlen share ('' without maxlen),
# ARGV[3] chunk, ARGV[4] '1' for a dry run, ARGV[5] first id to look at ('-' or an id),
# ARGV[6] entries a dry run already counted, ARGV[7] server time in ms,
# ARGV[8..] the declared readers, each of which must have its group.
# Returns {removed, length, state ('done'|'held'|'more'), last id removed,
#          holding group, reason ('pending'|'unread'|'no group'), id it stopped at}.
TRIM_SCRIPT = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq), ms
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local function after(id)
  local _, seq, ms = parse(id)
  return ms .. '-' .. string.format('%d', seq + 1)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[4] ~= '1' then redis.call('HSET', KEYS[2], 'checked', ARGV[7]) end
  return {0, 0, 'done', '', '', '', ''}
end
local length = redis.call('XLEN', KEYS[1])
local hold, by, why = nil, '', ''
local seen = {}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  seen[info['name']] = true
  local point, reason = after(info['last-delivered-id']), 'unread'
  if info['pending'] > 0 then
    local first = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if less(first, point) then point, reason = first, 'pending' end
  end
  if hold == nil or less(point, hold) then hold, by, why = point, info['name'], reason end
end
for i = 8, #ARGV do
  if not seen[ARGV[i]] then hold, by, why = '0-1', ARGV[i], 'no group' break end
end
local age, chunk = ARGV[1], tonumber(ARGV[3])
local excess = -1
if ARGV[2] ~= '' then excess = length - tonumber(ARGV[2]) - tonumber(ARGV[6]) end
local function walk()
  local start, n, last = ARGV[5], 0, ''
  while true do
    local page = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 128)
    for _, e in ipairs(page) do
      local id = e[1]
      if not (n < excess or (age ~= '' and less(id, age))) then return n, last, 'done', '' end
      if hold ~= nil and not less(id, hold) then return n, last, 'held', id end
      if n == chunk then return n, last, 'more', '' end
      n, last = n + 1, id
    end
    if #page < 128 then return n, last, 'done', '' end
    start = after(page[#page][1])
  end
end
local n, last, state, at = walk()
if ARGV[4] ~= '1' then
  if n > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', after(last))
    redis.call('HINCRBY', KEYS[2], 'removed', n)
  end
  if state == 'held' then
    redis.call('HSET', KEYS[2], 'held_by', by, 'held_reason', why, 'held_at', at)
  elseif state == 'done' then
    redis.call('HDEL', KEYS[2], 'held_by', 'held_reason', 'held_at')
  end
  if state ~= 'more' then redis.call('HSET', KEYS[2], 'checked', ARGV[7]) end
end
if state ~= 'held' then by, why = '', '' end
return {n, length, state, last, by, why, at}
"""


@dataclass(frozen=True)
class Hold:
    """What stopped a trim on one key: a group, why ('pending', 'unread' or 'no group'
    when the reading agent has not created its group), and the entry it stopped at."""

    key: str
    group: str
    reason: str
    entry: str


@dataclass
class StreamTrim:
    """One stream's pass: lengths (all partitions) before and after, what was removed."""

    stream: str
    maxlen: int | None
    max_age: float | None
    before: int = 0
    after: int = 0
    removed: int = 0
    held: list[Hold] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "maxlen": self.maxlen,
            "max_age": self.max_age,
            "length_before": self.before,
            "length_after": self.after,
            "removed": self.removed,
            "held_by": [h.__dict__ for h in self.held],
        }


def retained(mesh: MeshSpec) -> list[StreamSpec]:
    """The streams with a retention, by name."""
    streams = [s for _, s in sorted(mesh.streams.items())]
    return [s for s in streams if s.maxlen is not None or s.max_age is not None]


def trim(mesh: MeshSpec, url: str | redis.Redis) -> int:
    """Apply every stream's retention once; the number of entries removed."""
    return sum(t.removed for t in trim_report(mesh, url))


def trim_report(
    mesh: MeshSpec, url: str | redis.Redis, *, dry_run: bool = False
) -> list[StreamTrim]:
    """Apply (or, with ``dry_run``, only measure) every stream's retention once.

    With P partitions each partition keeps ``ceil(maxlen / P)``, so a stream holds
    about ``maxlen`` entries in all, as its author meant.
    """
    with using(url) as r:
        script = r.register_script(TRIM_SCRIPT)
        now_ms = server_ms(r)
        return [_trim_stream(script, mesh, spec, now_ms, dry_run) for spec in retained(mesh)]


def _trim_stream(
    script: Any, mesh: MeshSpec, spec: StreamSpec, now_ms: int, dry_run: bool
) -> StreamTrim:
    age = f"{max(0, now_ms - int(spec.max_age * 1000))}-0" if spec.max_age is not None else ""
    share = "" if not spec.maxlen else str(-(-spec.maxlen // mesh.partitions))
    out = StreamTrim(spec.name, spec.maxlen, spec.max_age)
    for p, key in enumerate(stream_keys(mesh, spec.name)):
        record = keys.retention_record(mesh.name, spec.name, p, mesh.partitions)
        head = [age, share, str(TRIM_CHUNK), "1" if dry_run else ""]
        tail = [str(now_ms), *mesh.readers(spec.name)]
        _trim_key(script, key, [key, record], head, tail, out)
    return out


def _trim_key(
    script: Any, key: str, names: list[str], head: list[str], tail: list[str], out: StreamTrim
) -> None:
    """Run the script on one key until it is done: a chunk at a time; a dry run moves
    on past what it counted, a real run starts again at the (new) first entry."""
    dry = bool(head[3])
    start, counted, before = "-", 0, None
    while True:
        skip = str(counted) if dry else "0"
        reply = script(keys=names, args=[*head, start, skip, *tail])
        n, length, state, last, group, reason, at = (_text(v) for v in reply)
        before = int(length) if before is None else before
        counted += int(n)
        if state == "held":
            out.held.append(Hold(key, group, reason, at))
        if state != "more":
            break
        if dry:
            start = after(last)
    out.before += before
    out.removed += counted
    out.after += before - counted


def after(entry_id: str) -> str:
    """The smallest id above ``entry_id``."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def server_ms(r: redis.Redis) -> int:
    """The server's clock, since entry ids come from it and not from ours."""
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def records(r: redis.Redis, mesh: MeshSpec, stream: str) -> dict[str, Any]:
    """What retention did to ``stream`` so far (all partitions): entries removed in
    total, when it last looked (server ms, the oldest of the partitions), and what it
    was waiting on then."""
    removed, checked, held = 0, None, []
    for p, key in enumerate(stream_keys(mesh, stream)):
        raw = r.hgetall(keys.retention_record(mesh.name, stream, p, mesh.partitions))
        rec = {_text(k): _text(v) for k, v in raw.items()}
        removed += int(rec.get("removed", 0))
        if "checked" in rec:
            checked = min(int(rec["checked"]), checked or int(rec["checked"]))
        if rec.get("held_by"):
            held.append(Hold(key, rec["held_by"], rec.get("held_reason", ""), rec["held_at"]))
    return {"removed": removed, "checked_ms": checked, "held_by": [h.__dict__ for h in held]}


def format_trim(reports: list[StreamTrim], dry_run: bool) -> str:
    """A pass as a table: one row per stream, then what held each one back."""
    verb = "WOULD REMOVE" if dry_run else "REMOVED"
    rows = [["STREAM", "RETENTION", "BEFORE", "AFTER", verb, "HELD BACK BY"]]
    for t in reports:
        rows.append([
            t.stream, policy_text(t.maxlen, t.max_age), str(t.before), str(t.after),
            str(t.removed), "; ".join(hold_text(h) for h in t.held) or "-",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines = [line.rstrip() for line in lines]
    if not reports:
        lines.append("(no stream declares a retention)")
    return "\n".join(lines)


def policy_text(maxlen: int | None, max_age: float | None) -> str:
    parts = [f"maxlen {maxlen}"] if maxlen else []
    if max_age is not None:
        parts.append(f"max_age {max_age:g}s")
    return ", ".join(parts)


def hold_text(h: Hold | dict[str, str]) -> str:
    """``group `work`: pending entry 1-0 (on key)`` in words a person can act on."""
    d = h.__dict__ if isinstance(h, Hold) else h
    if d["reason"] == "no group":
        return f"agent {d['group']} has no group yet (on {d['key']})"
    what = "oldest pending entry" if d["reason"] == "pending" else "first unread entry"
    return f"group {d['group']}: {what} {d['entry']} (on {d['key']})"
