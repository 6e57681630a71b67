"""The one registry of diagnostic codes. Codes are stable: never reuse a number.

Each code carries its severity, a short title and the text that ``meshc validate
--explain CODE`` prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshc.diagnostics import ERROR, WARNING, Diagnostic, Related, Span


@dataclass(frozen=True)
class Code:
    code: str
    severity: str
    title: str
    explain: str

    def at(
        self,
        span: Span,
        message: str,
        *,
        help_text: str = "",
        related: Sequence[tuple[Span, str]] = (),
        severity: str | None = None,
        subjects: Iterable[str] = (),
        breaks: Iterable[str] = (),
    ) -> Diagnostic:
        """A diagnostic of this code; ``subjects`` and ``breaks`` say what follows
        from what (see ``meshc.diagnostics.fold_consequences``)."""
        return Diagnostic(
            code=self.code,
            severity=severity or self.severity,
            message=message,
            span=span,
            help=help_text,
            related=tuple(Related(s, m) for s, m in related),
            subjects=frozenset(subjects),
            breaks=frozenset(breaks),
        )


REGISTRY: dict[str, Code] = {}


def _code(code: str, severity: str, title: str, explain: str) -> Code:
    assert code not in REGISTRY, code
    REGISTRY[code] = Code(code, severity, title, explain.strip())
    return REGISTRY[code]


# --- MESH0xx: reading the file ------------------------------------------------------
BAD_YAML = _code(
    "MESH001",
    ERROR,
    "not valid YAML or not UTF-8 text",
    """
The file could not be read as YAML: a syntax error (indentation, an unclosed quote
or bracket, a tab used for indentation), bytes that are not UTF-8, more than one
YAML document, an unknown alias or an unsupported tag. The position points at the
problem. Fix: correct the syntax there; save the file as UTF-8.
""",
)
SCHEMA = _code(
    "MESH002",
    ERROR,
    "does not fit the mesh schema",
    """
A key is unknown, a value has the wrong type, or a required field is missing.
Mesh files are strict: a misspelt key is an error rather than silently ignored.
Fix: follow the message (it names the expected type or the allowed keys); point
your editor at schemas/mesh.schema.json for completion (`meshc schema`).
""",
)
DUPLICATE_KEY = _code(
    "MESH003",
    ERROR,
    "the same key twice in one mapping",
    """
YAML loaders keep only the last of two equal keys, so the first one would be lost
without a word. Two agents or streams with the same name, or a policy key written
twice, are the usual causes. Fix: remove or rename one of them.
""",
)
REFUSED = _code(
    "MESH004",
    ERROR,
    "refused input: too large, too deep or alias expansion",
    """
The file crosses a bound that protects the validator from hostile input, and
nothing is built from it. The message says which:

- its size: more than 64 MiB (a file that large is refused from its size, unread).
  A mesh file is far smaller: check that it is the file you meant; `meshc validate
  --max-bytes N` raises the bound.
- its nesting: more than 64 levels of mappings and lists. A mesh needs a few:
  flatten the structure.
- its nodes: more than 5,000,000 values written in the file. Check the file, or
  split the mesh into smaller ones.
- alias expansion: aliases (`*name`) that copy anchored parts (`&name`) past
  5,000,000 nodes, the "billion laughs" attack. Remove the nested aliases, or write
  the repeated part out once.
""",
)

# --- MESH1xx: the graph ---------------------------------------------------------------
CYCLE = _code(
    "MESH101",
    ERROR,
    "cycle",
    """
An Agentic Mesh is a directed acyclic graph: following writes and reads from an
agent must never lead back to it, or a message could circulate forever. The
message prints the cycle as `a → s1 → b → s2 → a`. Fix: remove one edge of the
cycle, or send the feedback to a new agent through a new stream that starts a new
task (a new trace) instead of looping.
""",
)
AGENT_ADDRESSED = _code(
    "MESH102",
    ERROR,
    "an agent addresses an agent",
    """
Agents know stream names only; they never call or address each other. A `reads`
or `writes` entry names an agent. Fix: declare a stream between the two agents,
let one write it and the other read it.
""",
)
MULTIPLE_WRITERS = _code(
    "MESH103",
    ERROR,
    "a stream has more than one writer",
    """
Every stream has exactly one writer, so its history has one owner and one schema
authority. Fix: give each writer its own stream and let the reader read them all
(or put an aggregator in between).
""",
)
UNDECLARED_STREAM = _code(
    "MESH104",
    ERROR,
    "reference to an undeclared stream",
    """
A `reads` or `writes` entry names a stream that `streams` does not declare.
Fix: declare it under `streams` with its type, or correct the spelling (the help
line suggests the closest declared name).
""",
)
UNWRITTEN_STREAM = _code(
    "MESH105",
    ERROR,
    "a stream that no agent writes",
    """
A declared stream has no writer, so nothing can ever arrive on it. An intake
stream is written by a `producer` agent (the identity under which `meshc submit`
and outside clients write). Fix: add the stream to some agent's `writes`, add a
producer, or remove the stream.
""",
)
UNREAD_STREAM = _code(
    "MESH106",
    WARNING,
    "a stream that nobody reads and that is not terminal",
    """
Messages written here pile up with no consumer. If callers read this stream (a
result stream), mark it `terminal: true`. Otherwise add it to a reader's `reads`
or remove it.
""",
)
UNREACHABLE = _code(
    "MESH107",
    ERROR,
    "an agent unreachable from any producer",
    """
No path of streams leads from a producer to this agent, so it never receives
work. Fix: connect its input to a stream that a producer's work reaches, or add a
producer for its input. An agent unreachable only because of another error (an
agent before it that a schema error broke, an input nobody writes, another
unreachable agent that feeds it) is a note of that error instead.
""",
)
BAD_NAME = _code(
    "MESH108",
    ERROR,
    "a name outside the grammar, or used twice",
    """
Stream names are dot-separated words of lowercase letters, digits, `_` and `-`
(`doc.review.tasks`); agent names are Python-style identifiers (`grammar`,
`lens_a`) and not Python keywords. Agents and streams share one namespace, so a
name may be used once. Fix: rename as the help line suggests.
""",
)
ROLE_SHAPE = _code(
    "MESH109",
    ERROR,
    "an agent's reads, writes or handler do not fit its role",
    """
Roles have shapes: a producer has no `reads` and no handler and writes at least
one stream; a sink writes nothing; a coordinator, specialist or aggregator reads
at least one stream; an aggregator reads at least two streams and has a `join`;
only aggregators have a `join`; every role but producer and sink writes something.
Fix: change the role or the lists.
""",
)
BAD_REFERENCE = _code(
    "MESH110",
    ERROR,
    "a lane-family reference that does not resolve",
    """
`@family.input` and `@family.output` in `reads`/`writes` expand to the streams of a
lane family declared under `lanes`. The family or the side named does not exist.
Fix: declare the family or correct the reference.
""",
)

# --- MESH2xx: types ---------------------------------------------------------------------
UNDECLARED_TYPE = _code(
    "MESH201",
    ERROR,
    "undeclared type",
    """
A stream's `type` or a field's type expression names a type that `types` does
not declare and that is not a built-in (`str`, `int`, `float`, `bool`, `any`).
Fix: declare it under `types` or correct the spelling.
""",
)
BAD_TYPE_EXPR = _code(
    "MESH202",
    ERROR,
    "malformed type expression",
    """
Field types are `str`, `int`, `float`, `bool`, `any`, a declared type's name,
`list[T]`, `dict[str, T]` or `T | None`. Fix: write the field's type in that form.
""",
)
JOIN_KEY_MISSING = _code(
    "MESH203",
    ERROR,
    "a join key missing from an input type",
    """
An aggregator joins partial results on the fields named in `join.on`; every
input stream's type must have each of those fields (and the output type should
carry them too). Fix: add the field to the type or change `join.on`.
""",
)
FAN_WIDTH = _code(
    "MESH204",
    ERROR,
    "fan-in width differs from fan-out width",
    """
An aggregator that joins lanes of a family must read every lane's output stream;
otherwise a join waits for a lane that never answers, or misses one. Fix: make
the aggregator read all the family's outputs (`@family.output`).
""",
)
FANOUT_TYPE = _code(
    "MESH205",
    ERROR,
    "the fanout handler writes a type that differs from its input",
    """
The built-in `fanout` copies each task unchanged to every output lane, so every
output stream must have the input stream's type. Fix: change the output streams'
type, or write a coordinator handler that converts the task.
""",
)
TYPE_CYCLE = _code(
    "MESH206",
    ERROR,
    "types refer to each other in a cycle",
    """
Message types are plain JSON documents; a type that contains itself (directly or
through others) cannot be sent as a finite message without an optional link.
Fix: break the cycle, or make the link `T | None` or `list[T]`.
""",
)
UNUSED_TYPE = _code(
    "MESH207",
    WARNING,
    "a type that no stream uses",
    """
A declared type is not used by any stream or by another type. Fix: remove it or
use it.
""",
)
MERGE_SHAPE = _code(
    "MESH208",
    ERROR,
    "the default merge needs fields the output type lacks",
    """
An aggregator without a handler uses the built-in `merge`, which writes the join
keys, `parts` (lane → partial) and `missing` (lanes absent after the timeout).
The output type must have those fields. Fix: add `parts: dict[str, any]` and
`missing: list[str]` to the output type, or give the aggregator a handler.
""",
)
PARTITION_KEY = _code(
    "MESH209",
    ERROR,
    "the partition key is missing from an intake type",
    """
`partition_key` names the payload field that routes a task to a partition; every
intake stream's type must have it. Fix: add the field or change `partition_key`.
""",
)
TYPE_NAME = _code(
    "MESH210",
    ERROR,
    "a type or field name is not an identifier",
    """
Message types become Python classes and their fields attributes, so a type name
and a field name are identifiers (letters, digits, `_`; not starting with a digit,
`_` or `model_`; not a Python keyword). Fix: rename as the help line suggests.
""",
)

RESERVED_NAME = _code(
    "MESH211",
    ERROR,
    "a type or field name that shadows a name of the generated models",
    """
The generated `models.py` imports `BaseModel`, `ConfigDict`, `Any` (and
`annotations`) and its fields use the built-ins `str`, `int`, `float`, `bool`,
`list` and `dict`. A type of one of those names replaces it there: a type called
`BaseModel` becomes the base class of every later model, one called `list` breaks
every `list[T]` field, and the package fails when imported although the mesh
validated. Fields share their model's class body, where pydantic reads the
annotations: a field named like a type (`str`, or a declared type such as `Item`)
hides that type from its neighbours, and one named like a pydantic method (`json`,
`copy`, `validate`, `schema`...) shadows it on every message, with a warning at
every import (an error under `python -W error`).

    types:
      BaseModel: {id: str}        # MESH211: rename it, e.g. `BaseMessage`
      Order:
        Item: "Item | None"       # MESH211: rename the field, e.g. `item`
        json: str                 # MESH211: rename it, e.g. `json_text`

Fix: rename the type or the field as the help line suggests.
""",
)

# --- MESH3xx: handlers (with --resolve) ------------------------------------------------
HANDLER_IMPORT = _code(
    "MESH301",
    ERROR,
    "handler import path does not resolve",
    """
With `--resolve`, each `handler: package.module:function` is imported. The module
could not be imported or has no such attribute. Fix: correct the path, or run the
validator where the handler's package is importable (its folder on PYTHONPATH).
""",
)
HANDLER_SIGNATURE = _code(
    "MESH302",
    ERROR,
    "handler has the wrong signature",
    """
A handler is called as `handler(payload, ctx)` (an aggregator's as
`handler(joined, ctx)`): it must be callable with exactly two positional
arguments. Fix: change the function's parameters.
""",
)
HANDLER_COUPLING = _code(
    "MESH303",
    ERROR,
    "a handler module reaches past its boundary",
    """
Agents coordinate only through streams. A handler module that imports another
agent's handler module, or a Redis client, bypasses the mesh (and the ACLs that
enforce it). Fix: move shared code into a helper module that no agent is bound to,
and let the runtime do all stream I/O.
""",
)


def explain(code: str) -> str | None:
    entry = REGISTRY.get(code.upper())
    if entry is None:
        return None
    return f"{entry.code} ({entry.severity}): {entry.title}\n\n{entry.explain}\n"


def rules() -> list[tuple[str, str, str]]:
    return [(c.code, c.title, c.explain) for c in REGISTRY.values()]
