"""Questions the diff asks of a core mesh: who writes and reads a stream, which agents
run as processes, which handler an agent really has."""

from __future__ import annotations

from meshc.core import CoreAgent, CoreMesh

DEFAULT_HANDLERS = {"coordinator": "fanout", "aggregator": "merge"}


def writer(mesh: CoreMesh, stream: str) -> str | None:
    """The one agent that writes ``stream`` (a valid mesh has exactly one)."""
    for agent in mesh.agents.values():
        if stream in agent.write_names:
            return agent.name
    return None


def readers(mesh: CoreMesh, stream: str) -> tuple[str, ...]:
    """The agents that read ``stream``, each through a consumer group of its name."""
    return tuple(sorted(a.name for a in mesh.agents.values() if stream in a.read_names))


def runs(mesh: CoreMesh, agent: str) -> bool:
    """Does ``agent`` run as a worker? Producers do not: they are the identity clients
    write the intake under."""
    a = mesh.agents.get(agent)
    return a is not None and bool(a.reads)


def handler(agent: CoreAgent) -> str | None:
    """The handler the agent runs: its own, or its role's built-in."""
    return agent.handler or DEFAULT_HANDLERS.get(agent.role)


def running(mesh: CoreMesh) -> tuple[str, ...]:
    return tuple(sorted(a for a in mesh.agents if runs(mesh, a)))


def aggregators(mesh: CoreMesh) -> tuple[str, ...]:
    return tuple(sorted(a.name for a in mesh.agents.values() if a.join is not None))
