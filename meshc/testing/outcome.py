"""What a check found, and how a property is run to find it.

A check is a property over drawn inputs. :func:`run_property` runs it under
hypothesis with the run's seed and example budget, lets hypothesis shrink a failure,
and returns an :class:`Outcome` carrying the smallest failing input, so a report can
print it without a traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky, HypothesisException, Unsatisfiable

OK, FAIL, SKIP = "ok", "FAIL", "skip"


class CheckFailure(Exception):
    """Raised inside a property when it does not hold; carries what the report prints.

    ``agent`` is the agent at fault (it may differ from the agent under test, e.g. in an
    end-to-end run), ``payload`` the input to show (the failing example by default).
    """

    def __init__(
        self,
        message: str,
        *,
        agent: str | None = None,
        details: list[str] | None = None,
        help: str = "",
        payload: Any = ...,
        label: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.agent = agent
        self.details = details or []
        self.help = help
        self.payload = payload
        self.label = label


@dataclass
class Outcome:
    """One row of the report: a check on one agent (or one intake, end to end)."""

    check: str
    subject: str
    status: str = OK
    examples: int = 0
    note: str = ""
    failure: CheckFailure | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass(frozen=True)
class RunSettings:
    """How hard to try: examples per property, the seed, and the end-to-end budget."""

    max_examples: int = 100
    seed: int = 0
    e2e_examples: int = 10
    shrink: bool = True


def run_property(
    outcome: Outcome,
    strategy: st.SearchStrategy[Any],
    body: Callable[[Any], None],
    run: RunSettings,
    *,
    examples: int | None = None,
    label: str = "",
) -> Outcome:
    """Run ``body`` on drawn inputs; fill ``outcome`` (status, examples, failure)."""
    calls = 0

    def test(value: Any) -> None:
        nonlocal calls
        calls += 1
        try:
            body(value)
        except CheckFailure as failure:
            if failure.payload is ...:
                failure.payload = value
            failure.label = failure.label or label
            raise

    phases = tuple(Phase) if run.shrink else (Phase.explicit, Phase.generate)
    config = settings(
        max_examples=examples or run.max_examples,
        database=None,
        deadline=None,
        derandomize=False,
        report_multiple_bugs=False,
        print_blob=False,
        verbosity=Verbosity.quiet,
        phases=[p for p in phases if p is not Phase.explain],
        suppress_health_check=list(HealthCheck),
    )
    prop = config(with_seed(run.seed)(given(strategy)(test)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prop()
        except CheckFailure as failure:
            outcome.status, outcome.failure = FAIL, failure
        except Flaky as err:
            outcome.status, outcome.failure = FAIL, _flaky(err, label)
        except Unsatisfiable:
            outcome.status = SKIP
            outcome.note = "no valid input could be drawn (join keys of different types?)"
        except HypothesisException as err:
            outcome.status = SKIP
            outcome.note = f"hypothesis: {err}"
    outcome.examples += calls
    return outcome


def _flaky(err: BaseException, label: str) -> CheckFailure:
    """A failure that did not happen again on the same input: report the first one."""
    inner = [e for e in getattr(err, "exceptions", ()) if isinstance(e, CheckFailure)]
    first = inner[0] if inner else None
    failure = CheckFailure(
        "the check failed once and passed when hypothesis ran the same input again: "
        "the outcome depends on something besides the input"
        + (f" (first failure: {first.message})" if first else ""),
        agent=first.agent if first else None,
        details=first.details if first else [],
        help="make the handler a pure function of its payload, or mark the agent "
        "`deterministic: false`",
        payload=first.payload if first else None,
        label=label,
    )
    return failure
