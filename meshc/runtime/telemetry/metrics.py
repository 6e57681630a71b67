"""The Prometheus metrics a worker process writes (docs/observability.md).

Workers are separate processes, so they use ``prometheus_client``'s multi-process mode:
each writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``, a
private folder the supervisor makes (and tells the worker through ``MESHC_METRICS_DIR``),
and the supervisor's HTTP endpoint adds up every process's files at scrape time. The
library picks multi-process mode when it is imported, so the variable is set first.

Label children are bound once per (stream, ...) and kept, because ``labels()`` costs a
lock and a dict lookup that a call should not pay twice.
"""

from __future__ import annotations

import os
from typing import Any

METRICS_DIR_ENV = "MESHC_METRICS_DIR"  # set by the supervisor: metrics on, files here
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from sub-millisecond pass-through handlers to model calls of minutes.
HANDLER_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
    300,
)  # fmt: skip
TASK_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
)  # fmt: skip


def _families() -> dict[str, Any]:
    """Every worker metric, made once per process (a name may be registered once)."""
    from prometheus_client import Counter, Histogram

    agent = ("mesh", "agent")
    stream = ("mesh", "agent", "stream")
    counters = {
        "handled": ("meshc_messages_handled", "Inputs handled: handler calls that succeeded "
                    "(for an aggregator, partials stored)", stream),
        "failed": ("meshc_messages_failed", "Handler calls (and merges) that raised or "
                   "timed out", stream),
        "retried": ("meshc_messages_retried", "Calls run on a second or later delivery "
                    "(a retry, or an entry taken over from a dead worker)", stream),
        "dead": ("meshc_dead_letters", "Messages written to the agent's dead-letter "
                 "stream", stream),
        "late": ("meshc_late_partials", "Partials that arrived after their join was "
                 "emitted", agent),
        "timed_out": ("meshc_joins_timed_out", "Joins emitted at their deadline with "
                      "lanes missing", agent),
        "joins": ("meshc_joins_emitted", "Merged results an aggregator emitted", agent),
        "duplicates": ("meshc_duplicate_commits", "Inputs whose commit found them already "
                       "acknowledged elsewhere (outputs not written again)", agent),
        "llm_calls": ("meshc_llm_calls", "Requests sent to the model (cache hits "
                      "excluded)", agent),
        "llm_tokens": ("meshc_llm_tokens", "Model tokens used, by kind (prompt, "
                       "completion)", (*agent, "kind")),
    }  # fmt: skip
    out: dict[str, Any] = {
        key: Counter(name, doc, labels) for key, (name, doc, labels) in counters.items()
    }
    out["handler"] = Histogram(
        "meshc_handler_seconds", "Time of one handler call (a merge for an aggregator)",
        stream, buckets=HANDLER_BUCKETS,
    )  # fmt: skip
    out["task"] = Histogram(
        "meshc_task_seconds", "A task's time from its start to the entry on a terminal "
        "stream, observed by the writer of that stream", stream, buckets=TASK_BUCKETS,
    )  # fmt: skip
    return out


_FAMILIES: dict[str, Any] = {}


def families() -> dict[str, Any]:
    if not _FAMILIES:
        _FAMILIES.update(_families())
    return _FAMILIES


def enabled() -> bool:
    """True when the supervisor asked for metrics and ``prometheus_client`` imports in
    multi-process mode (the folder exists)."""
    folder = os.environ.get(METRICS_DIR_ENV)
    if not folder or not os.path.isdir(folder):
        return False
    os.environ[MULTIPROC_ENV] = folder  # before the library's first import
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class WorkerMetrics:
    """The label children of one agent's metrics, bound on first use."""

    def __init__(self, mesh: str, agent: str) -> None:
        self.mesh, self.agent = mesh, agent
        self.f = families()
        self._bound: dict[tuple[str, str], Any] = {}

    def of(self, key: str, stream: str | None = None) -> Any:
        """The child of metric ``key`` for this agent (and ``stream``, where it applies)."""
        child = self._bound.get((key, stream or ""))
        if child is None:
            labels = (self.mesh, self.agent) if stream is None else (self.mesh, self.agent, stream)
            child = self._bound[(key, stream or "")] = self.f[key].labels(*labels)
        return child

    def count(self, key: str, n: float = 1, stream: str | None = None) -> None:
        if n:
            self.of(key, stream).inc(n)

    def tokens(self, prompt: int, completion: int) -> None:
        llm = self.f["llm_tokens"]
        llm.labels(self.mesh, self.agent, "prompt").inc(prompt)
        llm.labels(self.mesh, self.agent, "completion").inc(completion)
