"""The server's record of the running mesh, and who owns which stream.

``meshc run`` records the mesh it runs in the hash ``<mesh>:@running``: name,
version, fingerprint, every stream's type form and fingerprint, the streams it
declares, the mesh file, who runs it (host, pid) and a heartbeat (server time, ms).
Each declared stream is claimed with ``meshc:@owner:<stream>`` -> mesh name, so the
single-writer rule holds across meshes: a *different* mesh declaring one of those
streams is refused (:data:`CLAIM` checks and claims in one script). ``@`` cannot
start an agent name, so neither key collides with an agent's private keys.

Workers read the record before they report ready: a build whose type forms cannot
read (or be read by) what the record says the streams hold refuses to start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import redis
from meshc.runtime import compat
from meshc.runtime.errors import ConfigError, MeshOpsError
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.runtime.wire import text
from redis.asyncio import Redis as AsyncRedis

OWNER_PREFIX = "meshc:@owner:"
STALE_MS = 15_000  # a heartbeat older than this: the recorded run is gone
BEAT = 2.0  # seconds between heartbeats
log = logging.getLogger("meshc.running")


class OwnershipError(MeshOpsError):
    """Another mesh owns streams this one declares, or the versions cannot meet."""


def record_key(mesh: str) -> str:
    return f"{mesh}:@running"


def owner_key(stream: str) -> str:
    return OWNER_PREFIX + stream


def schema_value(mesh: MeshSpec, streams: tuple[str, ...]) -> bytes:
    """The ``schema`` header of a worker writing ``streams``: mesh, version and the
    type fingerprints of what it writes (one when they share a type)."""
    prints = sorted({mesh.streams[s].fingerprint for s in streams if s in mesh.streams})
    return f"{mesh.name}@{mesh.version}/{','.join(p for p in prints if p)}".encode()


def record_fields(
    mesh: MeshSpec, file: str = "", pid: int | None = None, host: str | None = None
) -> dict[str, str]:
    """What ``meshc run`` records for ``mesh`` (the heartbeat is set by the script;
    ``loaded``, the fingerprint its workers run, once they do: :func:`mark_loaded`)."""
    streams = {n: {"fp": s.fingerprint, "form": s.form} for n, s in sorted(mesh.streams.items())}
    return {
        "name": mesh.name,
        "version": str(mesh.version),
        "fingerprint": mesh.fingerprint,
        "streams": orjson.dumps(streams).decode(),
        "declares": orjson.dumps(sorted(mesh.streams)).decode(),
        "file": file,
        "host": host or socket.gethostname(),
        "pid": str(os.getpid() if pid is None else pid),
    }


# KEYS[1] this mesh's record, KEYS[2..1+n] owner keys, then the records of meshes that
# own some of them now. ARGV: name, take_over (0/1), stale ms, n, then record fields.
# Returns {'ok'} after claiming, {'conflict', stream, owner, age_ms, ...}, or {'retry'}
# when an owner changed since the caller looked (its record key was not passed).
CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local name, take, stale, n = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local records = {}
for i = n + 2, #KEYS do records[KEYS[i]] = true end
local conflicts = {'conflict'}
for i = 2, n + 1 do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= name then
    local rec = owner .. ':@running'
    if not records[rec] then return {'retry'} end
    local beat = tonumber(redis.call('HGET', rec, 'heartbeat') or '0')
    local age = -1
    if beat > 0 then age = now - beat end
    if not (take and (age < 0 or age > stale)) then
      conflicts[#conflicts + 1] = string.sub(KEYS[i], #'@OWNER' + 1)
      conflicts[#conflicts + 1] = owner
      conflicts[#conflicts + 1] = age
    end
  end
end
if #conflicts > 1 then return conflicts end
for i = 2, n + 1 do redis.call('SET', KEYS[i], name) end
redis.call('HSET', KEYS[1], 'heartbeat', now, unpack(ARGV, 5))
return {'ok'}
""".replace("@OWNER", OWNER_PREFIX)

# KEYS[1] the record. ARGV[1] pid, ARGV[2] '1' to beat, '0' to mark it stopped. The
# heartbeat is server time in ms; only the process that runs the mesh now touches it.
BEAT_SCRIPT = """
local t = redis.call('TIME')
if redis.call('HGET', KEYS[1], 'pid') ~= ARGV[1] then return 0 end
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'heartbeat', ARGV[2] == '1' and now or 0)
return 1
"""


def claim(
    client: redis.Redis, mesh: MeshSpec, fields: Mapping[str, str], *, take_over: bool = False
) -> None:
    """Record ``mesh`` as running and claim its streams; OwnershipError naming the other
    mesh and the streams when another one (alive, or any without ``take_over``) owns some."""
    owners = [owner_key(s) for s in sorted(mesh.streams)]
    for _ in range(5):
        current = {text(o) for o in client.mget(owners) if o is not None}
        others = sorted(record_key(o) for o in current if o != mesh.name)
        args: list[str | int] = [mesh.name, int(take_over), STALE_MS, len(owners)]
        args += [x for kv in fields.items() for x in kv]
        reply = client.eval(CLAIM, 1 + len(owners) + len(others),
                            record_key(mesh.name), *owners, *others, *args)  # fmt: skip
        if reply[0] == b"ok":
            return
        if reply[0] == b"conflict":
            raise OwnershipError(_conflict(mesh.name, reply[1:], take_over))
    raise OwnershipError("the owners of the streams kept changing; try again")


def _conflict(name: str, flat: list[Any], take_over: bool) -> str:
    by_owner: dict[str, list[str]] = {}
    ages: dict[str, int] = {}
    for i in range(0, len(flat), 3):
        owner = flat[i + 1].decode()
        by_owner.setdefault(owner, []).append(flat[i].decode())
        ages[owner] = int(flat[i + 2])
    parts = []
    for owner, streams in sorted(by_owner.items()):
        age = ages[owner]
        if age < 0:
            state = "has stopped"
        else:
            alive = "is running" if age <= STALE_MS else "last ran"
            state = f"{alive} (heartbeat {age / 1000:.0f} s ago)"
        listed = ", ".join(f"`{s}`" for s in streams)
        parts.append(f"mesh `{owner}` owns {listed} on this server and {state}")
    how = (
        "Stop it first: --take-over takes streams over only from a mesh whose heartbeat "
        f"is older than {STALE_MS // 1000} s"
        if take_over
        else "A stream belongs to one mesh: stop the other mesh and run again with "
        "--take-over, or give this mesh the other's `mesh:` name and move to it with "
        "`meshc rollout OLD NEW`"
    )
    return f"mesh `{name}` declares streams of another mesh: {'; '.join(parts)}. {how}"


def mark_loaded(client: redis.Redis, mesh: MeshSpec) -> None:
    """Every worker of the run now runs ``mesh`` (``meshc rollout --apply`` waits on it)."""
    client.hset(record_key(mesh.name), "loaded", mesh.fingerprint)


def foreign_owners(client: redis.Redis, mesh: MeshSpec) -> dict[str, str]:
    """Streams of ``mesh`` that another mesh owns, with their owner (for ``submit``)."""
    names = sorted(mesh.streams)
    owners = client.mget([owner_key(s) for s in names])
    found = {s: text(o) for s, o in zip(names, owners, strict=True) if o is not None}
    return {s: o for s, o in found.items() if o != mesh.name}


def read_record(client: redis.Redis, mesh: str) -> dict[str, str]:
    raw = client.hgetall(record_key(mesh))
    return {text(k): text(v) for k, v in raw.items()}


def version_problems(recorded: Mapping[str, str], mesh: MeshSpec, streams: tuple[str, ...],
                     writes: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    """Why this build of ``mesh`` cannot meet the recorded version on ``streams`` it
    reads (the streams hold entries of the recorded form) or ``writes`` (readers of the
    recorded form read them). Empty: same fingerprints, or a compatible change."""
    if not recorded.get("streams") or recorded.get("name") != mesh.name:
        return []
    held: dict[str, dict[str, str]] = orjson.loads(recorded["streams"])
    out = []
    for s in sorted(set(streams) | set(writes)):
        old, new = held.get(s), mesh.streams[s]
        if old is None or old["fp"] == new.fingerprint or not old["form"] or not new.form:
            continue
        found = []
        if s in streams:
            found += compat.problems(old["form"], new.form)
        if s in writes:
            found += compat.problems(new.form, old["form"])
        if found:
            out.append(
                f"`{s}`: the server records type {old['fp']} (v{recorded.get('version')}), "
                f"this build has {new.fingerprint}: {'; '.join(found)}"
            )
    return out


async def check_version(r: AsyncRedis, mesh: MeshSpec, spec: AgentSpec) -> None:
    """ConfigError, before a worker reports ready (so its supervisor backs off), when
    its build's types cannot meet what the server records for the streams it uses."""
    raw = await r.hgetall(record_key(mesh.name))
    record = {text(k): text(v) for k, v in raw.items()}
    problems = version_problems(record, mesh, spec.reads, spec.writes)
    if problems:
        raise ConfigError(
            f"agent {spec.name} of {mesh.name} v{mesh.version} does not fit the version "
            f"running on this server: {'; '.join(problems)}. Move the mesh to this "
            "version with `meshc rollout OLD NEW --apply`, or run the build of the "
            "recorded version"
        )


def checker(mesh: MeshSpec, spec: AgentSpec) -> Callable[[AsyncRedis], Awaitable[None]]:
    """:func:`check_version` for one worker, as a step its start-up retries."""
    return lambda r: check_version(r, mesh, spec)


class Heartbeat:
    """Beats the record every :data:`BEAT` seconds on a thread until :meth:`stop`."""

    def __init__(self, client: redis.Redis, mesh: str, pid: int | None = None) -> None:
        self.client, self.key = client, record_key(mesh)
        self.pid = str(os.getpid() if pid is None else pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshc-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(BEAT):
            self._beat("1")

    def _beat(self, alive: str) -> None:
        try:
            self.client.eval(BEAT_SCRIPT, 1, self.key, self.pid, alive)
        except redis.RedisError as exc:  # the server restarting: beat again later
            log.debug("heartbeat failed: %s", exc)

    def stop(self) -> None:
        """Stop beating and mark the run stopped (another mesh may take over at once)."""
        self._stop.set()
        self._thread.join()
        self._beat("0")
        time.sleep(0)
