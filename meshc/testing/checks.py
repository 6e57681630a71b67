"""Checks that call an agent's handler directly, with a Context built for the test.

No server is involved: the handler gets a validated payload of its input type (or,
for an aggregator, a ``Joined`` of partials) and a Context whose ``collect`` validates
every output against its stream's model, exactly as the worker does before a commit.

- **contract**: every valid input is accepted, and every output fits its stream;
- **determinism**: the same input twice gives the same outputs (agents marked
  ``deterministic: false`` are checked end to end instead, see :mod:`meshc.testing.e2e`);
- **join order**: an aggregator gives the same outputs whatever order its partials
  arrive in (every permutation up to five lanes; rotations and the reverse beyond).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import meshc
import orjson
from hypothesis import strategies as st
from meshc.runtime.context import Context, Joined
from meshc.runtime.errors import InvalidOutput, UndeclaredStream
from meshc.runtime.spec import AgentSpec, MeshSpec
from meshc.testing.outcome import SKIP, CheckFailure, Outcome, RunSettings, run_property
from meshc.testing.strategies import joined, payloads, schema_of
from pydantic import BaseModel

Handler = Callable[..., Any]
TRACE, ENTRY = "0123456789abcdef0123456789abcdef", "1-0"
ALL_ORDERS_UP_TO = 5
_MESHC = os.path.join(os.path.dirname(os.path.abspath(meshc.__file__)), "")


@dataclass(frozen=True)
class Call:
    """What one handler call did: its outputs by stream (parsed JSON), or its error."""

    outputs: dict[str, list[Any]]
    error: str | None = None

    def show(self) -> str:
        if self.error is not None:
            return f"raised {self.error}"
        return orjson.dumps(self.outputs, option=orjson.OPT_SORT_KEYS).decode()


class Caller:
    """Calls handlers the way the worker does: sync or async, outputs validated."""

    def __init__(self, spec: MeshSpec) -> None:
        self.spec = spec
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def context(self, agent: AgentSpec, stream: str) -> Context:
        models = {s: self.spec.streams[s].model for s in agent.writes}
        log = logging.getLogger(f"meshc.worker.{agent.name}")
        return Context(agent, models, log, trace=TRACE, entry_id=ENTRY, attempt=1, stream=stream)

    def call(self, agent: AgentSpec, handler: Handler, payload: Any, stream: str = "") -> Call:
        """Run once; an exception becomes ``Call.error`` (with where user code raised)."""
        ctx = self.context(agent, stream)
        try:
            result = handler(payload, ctx)
            if inspect.isawaitable(result):
                result = self.loop.run_until_complete(_awaited(result))
            outputs = ctx.collect(result)
        except Exception as exc:
            return Call({}, _describe(exc))
        grouped: dict[str, list[Any]] = {}
        for s, data in outputs:
            grouped.setdefault(s, []).append(orjson.loads(data))
        return Call(dict(sorted(grouped.items())))


async def _awaited(result: Any) -> Any:
    return await result


def _describe(exc: Exception) -> str:
    where = ""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(f.filename).startswith(_MESHC)
    ]
    if frames:
        where = f" at {frames[-1].filename}:{frames[-1].lineno}"
    kind = "output error" if isinstance(exc, InvalidOutput | UndeclaredStream) else "error"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__} ({kind}){where}: {text[:600]}"


def input_label(spec: MeshSpec, stream: str) -> str:
    return f"{stream}, type {spec.streams[stream].model.__name__}"


Input = tuple[str, str, st.SearchStrategy[Any], Callable[[Any], Any]]


def _inputs(spec: MeshSpec, agent: AgentSpec) -> list[Input]:
    """(stream, label, strategy, to-handler-input) per input: payloads, or a Joined."""
    if agent.join is not None:
        return [("", "Joined parts", joined(spec, agent.name), _fresh)]
    schema = schema_of(spec)
    return [
        (s, input_label(spec, s), payloads(schema, s), spec.streams[s].model.model_validate)
        for s in agent.reads
    ]


def _fresh(value: Joined, order: list[str] | None = None) -> Joined:
    """A deep copy of a Joined (parts in ``order``), so a merge that mutates its parts
    cannot change what the next call sees."""
    lanes = order if order is not None else list(value.parts)
    parts = {lane: value.parts[lane].model_copy(deep=True) for lane in lanes}
    return Joined(dict(value.key), parts, value.missing)


def contract(
    spec: MeshSpec, agent: AgentSpec, handler: Handler, caller: Caller, run: RunSettings
) -> Outcome:
    """Every valid input is accepted and every output fits its stream's type."""
    outcome = Outcome("contract", agent.name)
    for stream, label, strategy, convert in _inputs(spec, agent):

        def body(value: Any, convert: Callable[[Any], Any] = convert, stream: str = stream) -> None:
            call = caller.call(agent, handler, convert(value), stream)
            if call.error is None:
                return
            if "output error" in call.error:
                message = f"an output of the handler does not fit its stream: {call.error}"
            else:
                message = f"the handler raised on a valid input: {call.error}"
            raise CheckFailure(
                message,
                agent=agent.name,
                help="a handler must accept every payload its input type allows and "
                "return outputs of its output streams' types; narrow the type in the "
                "mesh or handle the case",
            )

        run_property(outcome, strategy, body, run, label=label)
        if outcome.failed:
            break
    return outcome


def determinism(
    spec: MeshSpec, agent: AgentSpec, handler: Handler, caller: Caller, run: RunSettings
) -> Outcome:
    """The same input twice gives the same outputs (or the same error)."""
    outcome = Outcome("determinism", agent.name)
    if not agent.deterministic:
        outcome.status = SKIP
        outcome.note = "deterministic: false; duplicates checked end to end"
        return outcome
    for stream, label, strategy, convert in _inputs(spec, agent):

        def body(value: Any, convert: Callable[[Any], Any] = convert, stream: str = stream) -> None:
            first = caller.call(agent, handler, convert(value), stream)
            second = caller.call(agent, handler, convert(value), stream)
            if first != second:
                raise CheckFailure(
                    "the same input given twice produced different outputs, but the agent "
                    "is declared deterministic (the default)",
                    agent=agent.name,
                    details=[f"first call:  {first.show()}", f"second call: {second.show()}"],
                    help=f"make `{agent.name}` a pure function of its input (no counters, "
                    "clocks or random numbers), or mark it `deterministic: false` so "
                    "meshc checks instead that its duplicate deliveries are absorbed",
                )

        run_property(outcome, strategy, body, run, label=label)
        if outcome.failed:
            break
    return outcome


def orders(lanes: list[str]) -> list[list[str]]:
    """Every order of the lanes up to five of them; beyond, rotations and reversals."""
    if len(lanes) <= ALL_ORDERS_UP_TO:
        return [list(p) for p in itertools.permutations(lanes)]
    rotations = [lanes[i:] + lanes[:i] for i in range(len(lanes))]
    return rotations + [list(reversed(r)) for r in rotations]


def join_order(
    spec: MeshSpec, agent: AgentSpec, handler: Handler, caller: Caller, run: RunSettings
) -> Outcome:
    """The merge gives the same outputs whatever order the partials arrived in."""
    outcome = Outcome("join order", agent.name)
    if not agent.deterministic:
        outcome.status, outcome.note = SKIP, "deterministic: false"
        return outcome
    unsteady = False

    def body(value: Joined) -> None:
        nonlocal unsteady
        first = caller.call(agent, handler, _fresh(value))
        if caller.call(agent, handler, _fresh(value)) != first:
            unsteady = True  # not deterministic at all: the determinism check reports it
            return
        declared = list(value.parts)
        for order in orders(declared)[1:]:
            other = caller.call(agent, handler, _fresh(value, order))
            if other != first:
                raise CheckFailure(
                    "the merged result depends on the order in which the partials arrived",
                    agent=agent.name,
                    payload=_joined_json(value),
                    details=[
                        f"parts in order {', '.join(declared)}: {first.show()}",
                        f"parts in order {', '.join(order)}: {other.show()}",
                    ],
                    help=f"make `{agent.name}` independent of the order of `joined.parts` "
                    "(e.g. iterate `sorted(joined.parts.items())`, break ties by lane)",
                )

    run_property(outcome, joined(spec, agent.name), body, run, label="Joined parts")
    if unsteady and not outcome.failed:
        outcome.status, outcome.note = SKIP, "not deterministic (see determinism)"
    else:
        lanes = len(agent.join.lanes) if agent.join else 0
        outcome.note = f"{len(orders([str(i) for i in range(lanes)]))} orders"
    return outcome


def _joined_json(value: Joined) -> dict[str, Any]:
    return {
        "key": value.key,
        "parts": {lane: p.model_dump(mode="json") for lane, p in value.parts.items()},
        "missing": list(value.missing),
    }


def show_input(value: Any) -> Any:
    """A drawn input as JSON-ready data for the report."""
    if isinstance(value, Joined):
        return _joined_json(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
