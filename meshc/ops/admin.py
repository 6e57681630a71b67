"""The operator's side of a mesh: status and dead letters (trimming: ``retention``).

These functions back ``meshc status`` and ``meshc dlq list|redrive``. Each takes a URL
(or a client) so the CLI stays a thin layer, and returns plain data so the same result
prints as text or JSON. A redrive runs as a server-side script because its safety
depends on reading and writing in one step: it must never delete a dead letter it
failed to re-add. ``trim`` is :func:`meshc.runtime.retention.trim`, kept here for the
callers that know it from this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from meshc.ops.client import (
    Entry,
    decode_entry,
    group_lag,
    raw_payload,
    read_range,
)
from meshc.runtime import cluster, keys, retention
from meshc.runtime.connect import MeshOpsError, using
from meshc.runtime.keys import stream_keys
from meshc.runtime.llm import store as llm_store
from meshc.runtime.retention import trim
from meshc.runtime.scripts import RETRY_CONSUMER
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.wire import TASK, id_order

__all__ = ["AdminError", "dlq_list", "dlq_redrive", "format_status", "status", "trim"]

log = logging.getLogger("meshc.admin")

REDRIVE_SCRIPT = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"""


class AdminError(MeshOpsError):
    """Raised when an operator request names an unknown agent, entry or source stream."""


def _agent(mesh: MeshSpec, name: str) -> AgentSpec:
    if name not in mesh.agents:
        raise AdminError(f"mesh {mesh.name!r} has no agent {name!r}: {', '.join(mesh.agents)}")
    return mesh.agents[name]


def _dlq_keys(mesh: MeshSpec, agent: str) -> list[tuple[int, str]]:
    name = keys.dlq_stream(mesh.name, agent)
    return [
        (p, keys.stream_key(name, mesh.name, p, mesh.partitions)) for p in range(mesh.partitions)
    ]


# -- status ---------------------------------------------------------------------------


def status(mesh: MeshSpec, url: str | redis.Redis) -> dict[str, Any]:
    """Lengths, lags, pending entries, consumers, dead letters and late partials.

    A reading agent whose group does not exist yet is listed with ``exists: false``
    and everything undelivered, so a worker that never started is visible.
    """
    with using(url) as r:
        return {
            "server_ms": retention.server_ms(r),
            "mesh": mesh.name,
            "version": mesh.version,
            "partitions": mesh.partitions,
            "streams": {s: _stream_status(r, mesh, s) for s in sorted(mesh.streams)},
            "agents": {a: _agent_status(r, mesh, mesh.agents[a]) for a in sorted(mesh.agents)},
        }


def _stream_status(r: redis.Redis, mesh: MeshSpec, stream: str) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    length = 0
    for key in stream_keys(mesh, stream):
        key_len = int(r.xlen(key))
        length += key_len
        infos = _group_infos(r, key)
        for name in sorted(set(mesh.readers(stream)) | set(infos)):
            entry = groups.setdefault(name, _empty_group())
            _add_group(r, key, key_len, infos.get(name), entry)
    out = {"length": length, "terminal": mesh.streams[stream].terminal, "groups": groups}
    spec = mesh.streams[stream]
    if spec.maxlen is not None or spec.max_age is not None:
        out["retention"] = {
            "policy": retention.policy_text(spec.maxlen, spec.max_age),
            **retention.records(r, mesh, stream),
        }
    return out


def _group_infos(r: redis.Redis, key: str) -> dict[str, dict[str, Any]]:
    try:
        return {g["name"].decode(): g for g in r.xinfo_groups(key)}
    except redis.ResponseError:  # the key does not exist yet
        return {}


def _empty_group() -> dict[str, Any]:
    return {
        "exists": True,
        "lag": 0,
        "pending": 0,
        "retrying": 0,
        "last_delivered": {},
        "consumers": [],
    }


def _add_group(
    r: redis.Redis, key: str, key_len: int, info: dict[str, Any] | None, out: dict[str, Any]
) -> None:
    """Fold one partition's view of a group into the stream-wide summary ``out``."""
    if info is None:
        out["exists"] = False
        out["lag"] += key_len
        out["last_delivered"][key] = None
        return
    out["lag"] += group_lag(r, key, info)
    out["pending"] += int(info["pending"])
    out["last_delivered"][key] = info["last-delivered-id"].decode()
    for c in r.xinfo_consumers(key, info["name"]):
        if c["name"].decode() == RETRY_CONSUMER:  # failed calls waiting for their retry
            out["retrying"] += int(c["pending"])
        else:
            _merge_consumer(out["consumers"], c)


def _merge_consumer(consumers: list[dict[str, Any]], info: dict[str, Any]) -> None:
    name = info["name"].decode()
    for c in consumers:
        if c["name"] == name:
            c["pending"] += int(info["pending"])
            c["idle_ms"] = min(c["idle_ms"], int(info["idle"]))
            return
    consumers.append({"name": name, "pending": int(info["pending"]), "idle_ms": int(info["idle"])})


def _agent_status(r: redis.Redis, mesh: MeshSpec, agent: AgentSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": agent.role,
        "dead_letters": sum(int(r.xlen(k)) for _, k in _dlq_keys(mesh, agent.name)),
    }
    if agent.role == "aggregator":
        late = [
            keys.late_counter(mesh.name, agent.name, p, mesh.partitions)
            for p in range(mesh.partitions)
        ]
        out["late_partials"] = sum(int(v) for v in cluster.mget(r, late) if v is not None)
    if agent.handler == "llm":
        counters = llm_store.counter_keys(mesh.name, agent.name, mesh.partitions)
        out["llm"] = llm_store.totals(cluster.mget(r, counters))
    if agent.reads:
        out.update(_health(r, mesh, agent.name))
    return out


def _health(r: redis.Redis, mesh: MeshSpec, agent: str) -> dict[str, Any]:
    """What workers of ``agent`` recorded about themselves: how often handler calls stuck
    past their timeout made one exit for a fresh process, and the last such note."""
    exits, last = 0, None
    for p in range(mesh.partitions):
        fields: Any = r.hgetall(keys.private_key(mesh.name, agent, "health", p, mesh.partitions))
        exits += int(fields.get(b"stuck_exits", 0))
        note = fields.get(b"last_stuck")
        if note is not None and (last is None or note.decode() > last):
            last = note.decode()
    return {"stuck_exits": exits, "last_stuck": last}


def format_status(report: dict[str, Any]) -> str:
    """``status`` as two aligned tables (streams and groups, then agents)."""
    parts = "partition" if report["partitions"] == 1 else "partitions"
    lines = [f"mesh {report['mesh']} v{report['version']} ({report['partitions']} {parts})", ""]
    rows = [["STREAM", "LENGTH", "GROUP", "LAG", "PENDING", "CONSUMERS"]]
    for name, s in report["streams"].items():
        rows.append([name, str(s["length"]), "(terminal)" if s["terminal"] else "-", "", "", ""])
        for group, g in s["groups"].items():
            label = group if g["exists"] else f"{group} (no group yet)"
            rows.append(["", "", label, str(g["lag"]), _pending(g), _consumers(g["consumers"])])
    lines += _table(rows) + [""]
    rows = [["AGENT", "ROLE", "DEAD LETTERS", "LATE PARTIALS"]]
    for name, a in report["agents"].items():
        rows.append([name, a["role"], str(a["dead_letters"]), str(a.get("late_partials", "-"))])
    lines += _table(rows)
    stuck = {name: a for name, a in report["agents"].items() if a.get("stuck_exits")}
    if stuck:
        lines += ["", "workers that exited because handler calls were stuck past their timeout:"]
        lines += [f"  {name}: {a['stuck_exits']} times; last: {a['last_stuck']}"
                  for name, a in stuck.items()]  # fmt: skip
    llm = {name: a["llm"] for name, a in report["agents"].items() if "llm" in a}
    if llm:
        lines += ["", *_table(_llm_rows(llm))]
    kept = {name: s["retention"] for name, s in report["streams"].items() if "retention" in s}
    if kept:
        lines += ["", *_table(_retention_rows(kept, report["server_ms"]))]
    return "\n".join(lines)


def _retention_rows(kept: dict[str, dict[str, Any]], now_ms: int) -> list[list[str]]:
    """Per stream with a retention: its policy, what trimming removed in all, when it
    last looked, and what it was waiting on then (the group that stops it)."""
    rows = [["RETAINED STREAM", "POLICY", "REMOVED", "LAST TRIM", "WAITING ON"]]
    for name, k in kept.items():
        checked = k["checked_ms"]
        when = "never" if checked is None else f"{max(0, now_ms - checked) / 1000:.1f}s ago"
        held = "; ".join(retention.hold_text(h) for h in k["held_by"]) or "-"
        rows.append([name, k["policy"], str(k["removed"]), when, held])
    return rows


def _llm_rows(llm: dict[str, dict[str, int]]) -> list[list[str]]:
    """The LLM agents' totals: calls, tokens, cache hits, errors, mean latency."""
    rows = [["LLM AGENT", "CALLS", "PROMPT TOK", "COMPLETION TOK", "CACHE HITS", "ERRORS",
             "INVALID", "MEAN MS"]]  # fmt: skip
    for name, t in llm.items():
        answered = t["calls"] - t["errors"]
        mean = str(t["latency_ms"] // answered) if answered > 0 else "-"
        rows.append([name, *(str(t[k]) for k in llm_store.COUNTERS[:-1]), mean])
    return rows


def _pending(group: dict[str, Any]) -> str:
    """Pending entries; those waiting for a retry after a failure said apart."""
    retrying = group.get("retrying", 0)
    return f"{group['pending']} ({retrying} to retry)" if retrying else str(group["pending"])


def _consumers(consumers: list[dict[str, Any]]) -> str:
    if not consumers:
        return "-"
    return ", ".join(f"{c['name']} (pending {c['pending']}, idle {c['idle_ms'] / 1000:.1f}s)"
                     for c in consumers)  # fmt: skip


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


# -- dead letters -----------------------------------------------------------------------


def dlq_list(
    mesh: MeshSpec, agent: str, url: str | redis.Redis, count: int = 100
) -> list[dict[str, Any]]:
    """The oldest ``count`` dead letters of ``agent`` (all partitions), decoded."""
    _agent(mesh, agent)
    with using(url) as r:
        found = [
            _dead_letter(key, eid, fields)
            for _, key in _dlq_keys(mesh, agent)
            for eid, fields in read_range(r, key, count=count)
        ]
    return sorted(found, key=lambda d: id_order(d["id"]))[:count]


def _dead_letter(key: str, eid: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    entry = decode_entry(eid, fields)
    text = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    return {
        "id": entry["id"],
        "key": key,
        "data": entry["data"],
        "raw_data": raw_payload(fields.get(b"data")),
        "error": text.get("error", ""),
        "source_stream": text.get("source_stream", ""),
        "source_id": text.get("source_id", ""),
        "source_parent": text.get("source_parent", ""),
        "source_agent": text.get("source_agent", ""),
        "deliveries": int(text.get("deliveries") or 0),
        "trace": entry["trace"],
        "agent": entry["agent"],
    }


@dataclass(frozen=True)
class _Move:
    """One planned redrive: from which dead-letter key to which source key, with what."""

    dlq: str
    source: str
    letter_id: str
    fields: list[bytes | str]


def dlq_redrive(
    mesh: MeshSpec, agent: str, url: str | redis.Redis, ids: list[str] | None = None
) -> int:
    """Put dead letters back on their source streams; returns how many moved.

    Everything is checked before anything moves. A letter that cannot be replayed (a
    failed join has no source stream; no payload; a source the agent does not read)
    is skipped with a warning, or raises :class:`AdminError` when named in ``ids``, as
    do unknown ids. Each letter moves in one script: XADD to the source with the
    original header, then XDEL from the dead-letter stream, so none is lost or doubled.
    """
    spec = _agent(mesh, agent)
    with using(url) as r:
        plan = _redrive_plan(r, mesh, spec, ids)
        script = r.register_script(REDRIVE_SCRIPT)
        moved = [script(keys=[m.dlq, m.source], args=[m.letter_id, *m.fields]) for m in plan]
    return sum(1 for reply in moved if reply)


def _redrive_plan(
    r: redis.Redis, mesh: MeshSpec, agent: AgentSpec, ids: list[str] | None
) -> list[_Move]:
    plan: list[_Move] = []
    problems: dict[str, str] = {}
    for p, dlq in _dlq_keys(mesh, agent.name):
        for eid, fields in read_range(r, dlq):
            letter = _dead_letter(dlq, eid, fields)
            if ids is not None and letter["id"] not in ids:
                continue
            source = _source_key(mesh, agent, p, letter["source_stream"])
            problem = _unreplayable(agent, letter, source, fields)
            if problem:
                problems[letter["id"]] = problem
            elif source is not None:
                plan.append(
                    _Move(dlq, source, letter["id"], _header(r, mesh, source, fields, letter))
                )
    _check_plan(agent, ids, plan, problems)
    return plan


def _check_plan(
    agent: AgentSpec, ids: list[str] | None, plan: list[_Move], problems: dict[str, str]
) -> None:
    missing = set(ids or ()) - {m.letter_id for m in plan} - set(problems)
    if missing:
        raise AdminError(f"no dead letter of {agent.name!r} with id {', '.join(sorted(missing))}")
    reasons = "; ".join(f"{eid}: {why}" for eid, why in problems.items())
    if problems and ids is not None:
        raise AdminError(f"cannot re-drive dead letters of {agent.name!r}: {reasons}")
    if problems:
        log.warning("skipped %d dead letters of %s: %s", len(problems), agent.name, reasons)


def _unreplayable(
    agent: AgentSpec, letter: dict[str, Any], source: str | None, fields: dict[bytes, bytes]
) -> str | None:
    """Why a letter cannot go back to a source stream, or None when it can."""
    if not letter["source_stream"]:
        return "it has no source stream (a failed join: its partials cannot be replayed)"
    if source is None:
        return (
            f"its source stream {letter['source_stream']!r} is not an input of "
            f"{agent.name!r} ({', '.join(agent.reads)})"
        )
    if not fields.get(b"data"):
        return "it has no payload (the source entry was trimmed before it failed)"
    return None


def _source_key(mesh: MeshSpec, agent: AgentSpec, partition: int, source: str) -> str | None:
    """The key to re-add to: the recorded key, or a bare stream name in this partition."""
    for stream in agent.reads:
        key = keys.stream_key(stream, mesh.name, partition, mesh.partitions)
        if source in (stream, key):
            return key
    return None


def _header(
    r: redis.Redis, mesh: MeshSpec, source: str, fields: dict[bytes, bytes], letter: dict[str, Any]
) -> list[bytes | str]:
    """Field/value pairs to re-add: the dead letter's data under the original header.

    The original entry is read back when it still exists; otherwise the header comes
    from the letter (``trace``, ``source_parent``, ``source_agent``), with the source
    stream's one writer in the mesh standing in for a missing ``source_agent``.
    """
    sid = letter["source_id"]
    original = read_range(r, source, sid, sid) if sid else []
    task = fields  # the task's own fields (``task.*``): the letter keeps them too
    if original and original[0][1]:
        head = decode_entry(*original[0])
        task = original[0][1]
    else:
        writer = letter["source_agent"] or _writer(mesh, source)
        head = Entry(
            id="", trace=letter["trace"], parent=letter["source_parent"], agent=writer,
            attempt=1, data=None,
        )  # fmt: skip
    own = [x for k, v in task.items() if k.startswith(TASK) for x in (k, v)]
    return [
        "data", fields[b"data"], "trace", head["trace"], "parent", head["parent"],
        "agent", head["agent"], "attempt", str(head["attempt"]), *own,
    ]  # fmt: skip


def _writer(mesh: MeshSpec, key: str) -> str:
    for agent in mesh.agents.values():
        if any(key in stream_keys(mesh, s) for s in agent.writes):
            return agent.name
    return ""
