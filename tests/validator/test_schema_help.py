"""Schema problems (MESH002) say where and how to fix them, at every level of the model:
the mesh (a pydantic model), streams, agents and lane templates (slotted pydantic
dataclasses, which name their errors differently) and what nests in them (models)."""

from __future__ import annotations

import pytest
from meshc.api import analyze_text

HEAD = """\
mesh: helps
types:
  Task:
    id: str
"""
STREAMS = """\
streams:
  tasks:
    type: Task
  done:
    type: Task
    terminal: true
"""
AGENTS = """\
agents:
  ingest:
    role: producer
    writes: [tasks]
  work:
    role: specialist
    reads: [tasks]
    writes: [done]
"""


def only_schema_problem(text: str) -> tuple[int, str, str]:
    analysis = analyze_text(text)
    problems = [d for d in analysis.diagnostics if d.code == "MESH002"]
    assert len(problems) == 1, [(d.code, d.message) for d in analysis.diagnostics]
    found = problems[0]
    return found.span.line, found.message, found.help


@pytest.mark.parametrize(
    ("text", "line", "message", "fix"),
    [
        (  # a key of the mesh itself (a model)
            HEAD + "partitons: 2\n" + STREAMS + AGENTS,
            5,
            "unknown key `partitons` in the mesh",
            "did you mean `partitions`?",
        ),
        (  # a key of a stream (a dataclass)
            HEAD + STREAMS.replace("terminal: true", "termnal: true") + AGENTS,
            10,
            "unknown key `termnal` in stream `done`",
            "did you mean `terminal`?",
        ),
        (  # a key of an agent, policy fields included (a dataclass and its base)
            HEAD + STREAMS + AGENTS + "    max_delivries: 3\n",
            19,
            "unknown key `max_delivries` in agent `work`",
            "did you mean `max_deliveries`?",
        ),
        (  # a key of a model inside a dataclass
            HEAD
            + STREAMS.replace(
                "type: Task\n  done", "type: Task\n    retention: {max_len: 9}\n  done"
            )
            + AGENTS,
            8,
            "unknown key `max_len` in stream `tasks` field `retention`",
            "did you mean `maxlen`?",
        ),
        (  # a key of the policy defaults (a dataclass outside the keyed sections)
            HEAD + "defaults:\n  replica: 2\n" + STREAMS + AGENTS,
            6,
            "unknown key `replica` in `defaults`",
            "did you mean `replicas`?",
        ),
        (  # a key of a lane family's agent template (a dataclass inside a model)
            HEAD
            + STREAMS
            + AGENTS
            + "lanes:\n  fam:\n    names: [a]\n"
            + "    input: {stream: 'in.{lane}', type: Task}\n"
            + "    output: {stream: 'out.{lane}', type: Task}\n"
            + "    agent: {handlr: 'app.m:f'}\n",
            24,
            "unknown key `handlr` in lane family `fam` field `agent`",
            "did you mean `handler`?",
        ),
    ],
    ids=["mesh", "stream", "agent", "retention", "defaults", "lane-agent"],
)
def test_unknown_keys_are_placed_and_suggest_the_key(
    text: str, line: int, message: str, fix: str
) -> None:
    assert only_schema_problem(text) == (line, message, fix)


def test_an_agent_that_is_not_a_mapping_is_told_to_be_one() -> None:
    text = HEAD + STREAMS + AGENTS + "  broken: 3\n"
    line, message, fix = only_schema_problem(text)
    assert (line, fix) == (19, "write `broken` as a mapping of keys to values")
    assert message.startswith("agent `broken`: Input should be a dictionary")


def test_a_missing_required_field_names_it() -> None:
    text = HEAD + STREAMS.replace("    type: Task\n  done", "    description: x\n  done") + AGENTS
    line, message, fix = only_schema_problem(text)
    assert (line, message) == (6, "stream `tasks` is missing the required field `type`")
    assert fix == "add `type:` the name of a type declared under `types`"
