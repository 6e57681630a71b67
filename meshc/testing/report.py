"""The text of ``meshc test``: a summary table, then each failure with its smallest
input, what differed, the agent at fault, a fix, and the command that reruns it."""

from __future__ import annotations

import shlex
from typing import Any

import orjson
from meshc.testing.checks import show_input
from meshc.testing.outcome import CheckFailure, Outcome
from meshc.testing.runner import Report

WIDTH = 1000


def format_report(report: Report) -> str:
    lines = [_heading(report), "", *_table(report.outcomes)]
    for outcome in report.failed:
        assert outcome.failure is not None
        lines += ["", *_failure(report, outcome, outcome.failure)]
    lines += ["", _verdict(report)]
    return "\n".join(lines) + "\n"


def _heading(report: Report) -> str:
    m, r = report.mesh, report.run
    reading = sum(1 for a in m.agents.values() if a.reads)
    return (
        f"meshc test {report.path}: mesh {m.name} v{m.version}, {reading} agents, "
        f"{len(m.streams)} streams; seed {r.seed}, {r.max_examples} examples per check, "
        f"{r.e2e_examples} end-to-end runs"
    )


def _table(outcomes: list[Outcome]) -> list[str]:
    rows = [("check", "agent / intake", "examples", "result", "")]
    for o in outcomes:
        rows.append((o.check, o.subject, str(o.examples), o.status, o.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3]]
        line = "  ".join(cells)
        out.append(f"  {line.ljust(sum(widths) + 6)}  {r[4]}".rstrip())
    return out


def _failure(report: Report, outcome: Outcome, f: CheckFailure) -> list[str]:
    at_fault = f.agent or (outcome.subject if outcome.check != "end to end" else None)
    who = f"agent `{at_fault}`" if at_fault else f"`{outcome.subject}`"
    lines = [f"FAIL {outcome.check} · {who}", f"  {f.message}"]
    if f.payload is not ... and f.payload is not None:
        label = f" ({f.label})" if f.label else ""
        lines += [f"  smallest failing input{label}:", f"    {_json(show_input(f.payload))}"]
    lines += [f"  {d[:WIDTH]}" for d in f.details]
    if f.help:
        lines.append(f"  help: {f.help}")
    lines.append(f"  rerun: {_rerun(report, at_fault if outcome.check != 'end to end' else None)}")
    return lines


def _json(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def _rerun(report: Report, agent: str | None) -> str:
    r = report.run
    words = [
        "meshc",
        "test",
        report.path,
        "--seed",
        str(r.seed),
        "--max-examples",
        str(r.max_examples),
    ]
    if agent:
        words += ["--agent", agent]
    return shlex.join(words)


def _verdict(report: Report) -> str:
    failed, total = report.failed, len(report.outcomes)
    took = f"in {report.seconds:.1f} s"
    if not failed:
        skipped = sum(1 for o in report.outcomes if o.status == "skip")
        extra = f" ({skipped} skipped)" if skipped else ""
        if total == skipped:
            return f"nothing was checked{extra} {took}"
        return f"all {total - skipped} checks passed{extra} {took}"
    named = "; ".join(
        f"{o.check}: {o.failure.agent or o.subject}" for o in failed if o.failure is not None
    )
    return f"{len(failed)} of {total} checks failed ({named}) {took}; seed {report.run.seed}"
