"""The server behaviours meshc is built on, checked on both servers it is tested with.

Each test is one entry of docs/facts.md: if a server release changes the behaviour,
the test fails here rather than as a lost message somewhere in a worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

# The commit script's shape: XACK the input; only if that acknowledged it, XADD.
COMMIT = """
if redis.call('XACK', KEYS[1], 'g', ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[2], '*', 'data', '{}')
end
return 0
"""


USERS = ("reads", "writes", "m", "agent")


@pytest.fixture
def r(valkey_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_url)
    yield client
    client.acl_deluser(*USERS)  # only the users made here: the server is shared
    client.close()


def test_xtrim_removes_pending_entries_and_xautoclaim_drops_them(r: redis.Redis) -> None:
    for n in range(5):
        r.xadd("t", {"n": n})
    r.xgroup_create("t", "g", id="0")
    delivered = r.xreadgroup("g", "c", {"t": ">"}, count=3)[0][1]
    assert r.xtrim("t", maxlen=0, approximate=False) == 5  # pending ones included
    assert r.xpending("t", "g")["pending"] == 3  # the pending list keeps their ids
    history = r.xreadgroup("g", "c", {"t": "0"})[0][1]
    assert [(eid, fields) for eid, fields in history] == [(eid, {}) for eid, _ in delivered]
    _, claimed, deleted = r.execute_command("XAUTOCLAIM", "t", "g", "c2", "0", "0-0")
    assert claimed == [] and deleted == [eid for eid, _ in delivered]
    assert r.xpending("t", "g")["pending"] == 0  # the work is gone, silently


def test_how_each_claim_counts_deliveries_and_resets_idle_time(r: redis.Redis) -> None:
    """XCLAIM JUSTID resets an entry's idle time without counting a delivery (the
    keepalive of a live worker); a plain XCLAIM counts one (a retry); a history read of
    one's own pending entries counts one for every entry it returns (so recovery
    claims entries one round at a time instead); XCLAIM drops trimmed entries from the
    pending list without a word."""
    ids = [r.xadd("c", {"n": n}) for n in range(4)]
    r.xgroup_create("c", "g", id="0")
    r.xreadgroup("g", "w", {"c": ">"})

    def row(eid: bytes) -> dict[str, object]:
        [found] = r.xpending_range("c", "g", eid, eid, 1)
        return dict(found)

    r.xclaim("c", "g", "w", 0, [ids[0]], justid=True)
    assert row(ids[0])["times_delivered"] == 1
    r.xclaim("c", "g", "w2", 0, [ids[1]])
    assert (row(ids[1])["times_delivered"], row(ids[1])["consumer"]) == (2, b"w2")
    r.xreadgroup("g", "w", {"c": "0"})  # history: w still holds 0, 2 and 3
    assert [row(i)["times_delivered"] for i in (ids[0], ids[2], ids[3])] == [2, 2, 2]
    r.xdel("c", ids[3])
    assert [eid for eid, _ in r.xclaim("c", "g", "w", 0, [ids[2], ids[3]])] == [ids[2]]
    assert r.xpending("c", "g")["pending"] == 3


def test_creating_a_group_twice_is_busygroup_and_dollar_skips_the_past(r: redis.Redis) -> None:
    r.xadd("s", {"n": 1})
    r.xgroup_create("s", "zero", id="0")
    with pytest.raises(redis.ResponseError, match="^BUSYGROUP"):
        r.xgroup_create("s", "zero", id="0")
    r.xgroup_create("s", "dollar", id="$")
    assert r.xreadgroup("dollar", "c", {"s": ">"}) == []
    assert len(r.xreadgroup("zero", "c", {"s": ">"})[0][1]) == 1


NEEDS = {
    "%R~": [
        ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "k", ">"],
        ["XPENDING", "k", "g"],
        ["XINFO", "GROUPS", "k"],
        ["XRANGE", "k", "-", "+"],
    ],
    "%W~": [
        ["XADD", "k", "*", "a", "1"],
        ["XACK", "k", "g", "0-1"],
        ["XCLAIM", "k", "g", "c", "0", "0-1"],
        ["XAUTOCLAIM", "k", "g", "c", "0", "0"],
        ["XGROUP", "CREATE", "k", "g2", "0"],
        ["XTRIM", "k", "MAXLEN", "0"],
        ["XDEL", "k", "0-1"],
    ],
    "either": [["XLEN", "k"]],
}


def _dryrun(r: redis.Redis, user: str, command: list[str]) -> bool:
    return bool(r.execute_command("ACL", "DRYRUN", user, *command) == b"OK")


@pytest.mark.parametrize("needs", NEEDS)
def test_key_permission_each_stream_command_needs(r: redis.Redis, needs: str) -> None:
    r.xadd("k", {"a": 1})
    r.xgroup_create("k", "g", id="0")
    r.acl_setuser("reads", enabled=True, nopass=True, commands=["+@all"], keys=["%R~*"])
    r.acl_setuser("writes", enabled=True, nopass=True, commands=["+@all"], keys=["%W~*"])
    for command in NEEDS[needs]:
        allowed = (_dryrun(r, "reads", command), _dryrun(r, "writes", command))
        expected = {"%R~": (True, False), "%W~": (False, True), "either": (True, True)}[needs]
        assert allowed == expected, command


def test_multi_must_be_granted_explicitly(r: redis.Redis) -> None:
    r.acl_setuser("m", enabled=True, nopass=True, commands=["-@all", "+xadd"], keys=["~*"])
    assert _dryrun(r, "m", ["XADD", "k", "*", "a", "1"])
    assert not _dryrun(r, "m", ["MULTI"])


def _agent(r: redis.Redis, out_permission: str) -> redis.Redis:
    """A worker-like user: the group commands and scripts on `in`, XADD only on `out`."""
    rule = [
        "reset", "on", ">pw", "-@all", "+xreadgroup", "+xack", "+eval", "+ping",
        "%RW~in", f"{out_permission}~out", "(+xadd", "%W~out)",
    ]  # fmt: skip
    r.execute_command("ACL", "SETUSER", "agent", *rule)
    kwargs = r.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], username="agent", password="pw")


def test_a_script_needs_read_and_write_on_every_key_it_declares(r: redis.Redis) -> None:
    entry = r.xadd("in", {"data": "{}"})
    r.xgroup_create("in", "g", id="0")
    write_only = _agent(r, "%W")
    write_only.xreadgroup("g", "c", {"in": ">"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        write_only.eval(COMMIT, 2, "in", "out", entry)
    read_write = _agent(r, "%RW")
    assert read_write.eval(COMMIT, 2, "in", "out", entry)  # the new output's id
    assert read_write.eval(COMMIT, 2, "in", "out", entry) == 0  # acknowledged already
    assert r.xlen("out") == 1


def test_the_xadd_selector_keeps_an_agent_off_its_own_input(r: redis.Redis) -> None:
    r.xadd("in", {"data": "{}"})
    agent = _agent(r, "%RW")
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent.xadd("in", {"data": "{}"})
    with pytest.raises(redis.ResponseError, match="(?i)permission|can't access"):
        agent.eval("return redis.call('XADD', KEYS[1], '*', 'data', '{}')", 1, "in")
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent.eval("return 1", 1, "elsewhere")
    assert r.xlen("in") == 1
