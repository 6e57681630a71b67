"""Per-agent ACL rules (docs/design.md section 5, "Security"); no secrets in them.

Each agent gets one user whose root permissions allow the group commands and the
scripts on its input and output streams, and whose selectors add XADD only on its
outputs and its dead-letter stream, and the join-state commands only on its private
keys. Scripts need read and write permission on every key they declare (docs/facts.md),
so outputs are ``%RW~`` in the root permissions while XADD stays in a selector that
never names an input. Scripts run by SHA only (``+evalsha``): with ``+eval`` an agent
could send a script of its own, and ``EVAL "while true do end" 0`` freezes the server
for everyone; the operator, which may ``SCRIPT LOAD``, loads the project's scripts.
Passwords are added when the rules are applied (``meshc run
--acl``), never here.
"""

from __future__ import annotations

from meshc.core import CoreMesh

ROOT_COMMANDS = (
    "+ping",
    "+client|setinfo",
    "+client|setname",
    "+xreadgroup",
    "+xack",
    "+xautoclaim",
    "+xclaim",
    "+xpending",
    "+xgroup|create",
    "+xgroup|createconsumer",
    "+evalsha",
)
PRIVATE_COMMANDS = (
    "+exists",
    "+get",
    "+set",
    "+del",
    "+incr",
    "+hset",
    "+hsetnx",
    "+hexists",
    "+hget",
    "+hget",
    "+hgetall",
    "+hkeys",
    "+hdel",
    "+hlen",
    "+hincrby",
    "+zadd",
    "+zrem",
    "+zrangebyscore",
    "+time",
)
OPERATOR_COMMANDS = (
    "+ping",
    "+client|setinfo",
    "+client|setname",
    "+xadd",
    "+xlen",
    "+xrange",
    "+xrevrange",
    "+xread",
    "+xinfo",
    "+xpending",
    "+xtrim",
    "+xdel",
    "+xgroup|create",
    "+get",
    "+mget",
    "+exists",
    "+scan",
    "+hget",
    "+hgetall",
    "+hset",
    "+hdel",
    "+hincrby",
    "+evalsha",
    "+script|load",
    "+script|exists",
    "+xgroup|delconsumer",
    "+time",
)


def username(mesh: str, agent: str) -> str:
    return f"{mesh}.{agent}"


def operator_name(mesh: str) -> str:
    return f"{mesh}.operator"


def _pattern(core: CoreMesh, stream: str) -> str:
    """A key pattern for a stream in every partition (exact name with one partition)."""
    if core.partitions <= 1:
        return stream
    return f"{stream}{{{core.name}:*}}"


def acl_rules(core: CoreMesh) -> dict[str, str]:
    """Agent name → rule text for ``ACL SETUSER <user> reset on ><password> <rules>``."""
    rules: dict[str, str] = {}
    for name in sorted(core.agents):
        agent = core.agents[name]
        if agent.role == "producer":
            rules[name] = _producer(core, agent.write_names)
            continue
        ins = [_pattern(core, s) for s in sorted(set(agent.read_names))]
        outs = [_pattern(core, s) for s in sorted(set(agent.write_names))]
        dlq = _pattern(core, f"{core.name}.dlq.{name}")
        private = f"{core.name}:{name}:*"
        # A script's declared keys must all pass one selector, so the root permissions
        # cover the private keys too; the commands on them come from the private selector.
        root = " ".join(f"%RW~{k}" for k in [*ins, *outs, dlq, private])
        xadd = " ".join(f"%W~{k}" for k in [*outs, dlq])
        private_sel = " ".join(PRIVATE_COMMANDS) + f" %RW~{private}"
        record = f"(+hgetall %R~{core.name}:@running)"  # the version check at start
        rules[name] = (
            f"resetchannels -@all {' '.join(ROOT_COMMANDS)} {root} (+xadd {xadd}) "
            f"({private_sel}) {record}"
        )
    return rules


def _producer(core: CoreMesh, writes: tuple[str, ...]) -> str:
    """A producer may add to its intake streams and nothing else."""
    keys = " ".join(f"%RW~{_pattern(core, s)}" for s in sorted(set(writes)))
    return f"resetchannels -@all +ping +client|setinfo +client|setname +xadd +xlen +xinfo {keys}"


def operator_rule(core: CoreMesh) -> str:
    """The operator serves submit, status, trimming and dead letters for this mesh."""
    keys = sorted({_pattern(core, s) for s in core.streams})
    dlqs = sorted(_pattern(core, f"{core.name}.dlq.{a}") for a in core.agents)
    patterns = " ".join(f"~{k}" for k in [*keys, *dlqs, f"{core.name}:*"])
    owners = "%R~meshc:@owner:*"  # submit checks which mesh owns the streams
    return f"resetchannels -@all {' '.join(OPERATOR_COMMANDS)} {patterns} {owners}"
