"""The review mesh under faults, small enough for CI: 100 tasks, one kill at each
point, one stall, one server SIGKILL and restart (``python -m bench.chaos`` runs the
big one). Every task must come out exactly once with its four lenses.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench.chaos import KILL_POINTS, ChaosConfig, format_report, run

# Seed 4 puts the five kills on structure (read), aggregator (handled), coordinator
# (torn commit), grammar (sent commit) and clarity (outside), the stall on structure.
CONFIG = ChaosConfig(tasks=100, kills=5, server_restarts=1, stalls=1, seed=4, join_timeout=10)


@pytest.mark.timeout(240)
def test_every_task_exactly_once_through_kills_stalls_and_a_server_restart() -> None:
    report = run(CONFIG)
    print(format_report(report))  # shown by pytest -s, and on failure
    assert report["tasks"] == {
        "submitted": 100, "delivered_once": 100, "lost": 0, "duplicated": 0,
        "unexpected": 0, "incomplete": 0,
    }  # fmt: skip
    assert report["intake_entries"] == 100
    for stream, hop in report["hops"].items():
        assert (hop["entries"], hop["duplicates"], hop["missing"]) == (100, 0, 0), stream
    assert report["pending_at_end"] == 0 and report["open_joins_at_end"] == 0
    assert not any(report["dead_letters"].values())

    faults = report["faults"]
    hit = Counter(f["kind"] for f in faults if f["hit"])
    assert hit == Counter({**dict.fromkeys(KILL_POINTS, 1), "stall": 1, "server": 1})
    assert not [f for f in faults if "FAILED" in f["outcome"]]
    # Kills before the commit reached the server: every output of the entry the fault
    # hit came from a later delivery (attempt header >= 2), once.
    by_kind = {f["kind"]: f for f in faults}
    assert by_kind["read"]["outcome"] == "re-delivered"
    assert by_kind["torn"]["outcome"].endswith("re-delivered")
    assert by_kind["handled"]["outcome"] == "joined once by the sweeper"  # the aggregator
    assert by_kind["commit"]["outcome"].endswith("landed")  # the server ran it anyway
    reclaimed = sum(h["reclaimed"] for h in report["hops"].values())
    assert reclaimed >= 1 and max(h["max_attempt"] for h in report["hops"].values()) >= 2
    # Running workers ride out the server restart (they log and reconnect); the only
    # worker errors allowed are of workers the supervisor started while it was down.
    log = report["worker_log"]
    assert log["reconnects"] >= 1
    assert log["worker_errors"] == log["worker_errors_at_start"]
    assert report["supervisor_exits"].get("code 1", 0) == log["worker_errors_at_start"]
    if by_kind["stall"]["outcome"] == "reclaimed by the other replica":
        assert log["dropped_duplicate_commits"] >= 1  # the stalled replica's commit lost
    assert report["ok"]
