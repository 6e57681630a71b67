"""The parts of ``bench.slow`` that its figures rest on: the latency profile, the
sizes, the best possible schedule, and the delivery count that proves exactly once
(against a real server, with a duplicate and a loss it must catch)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slow() -> ModuleType:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.slow")


def test_latency_profile_is_nine_fast_one_slow_mean_116_ms(slow: ModuleType) -> None:
    waits = [slow.latency(n) for n in range(1000)]
    assert waits.count(0.8) == 100 and waits.count(0.04) == 900
    assert [slow.latency(n) for n in (9, 19, 10)] == [0.8, 0.8, 0.04]
    assert sum(waits) / len(waits) == pytest.approx(0.116) == slow.MEAN_S


@pytest.mark.parametrize("seconds", [0.25, 3.0, 10.0])
@pytest.mark.parametrize("c", [32, 256, 1024])
def test_sizes_give_at_least_the_ideal_duration(slow: ModuleType, c: int, seconds: float) -> None:
    n = slow.messages(c, seconds)
    assert n % 10 == 0
    assert seconds <= n * 0.116 / c < seconds + 10 * 0.116 / c


def test_best_schedule_by_hand(slow: ModuleType) -> None:
    # 32 slots, 70 messages: 0-31 start at 0 (9, 19, 29 slow: end at 0.8), 32-60 at
    # 0.04 (39, 49, 59 end at 0.84), 61-69 at 0.08 (69 ends at 0.88).
    assert slow.best_seconds(70, 32) == pytest.approx(0.88)
    assert slow.best_seconds(10, 1) == pytest.approx(9 * 0.04 + 0.8)
    assert slow.best_seconds(10, 10) == pytest.approx(0.8)


def _out(parent: bytes, n: int) -> dict[bytes, bytes]:
    return {b"data": orjson.dumps({"n": n, "text": "x"}), b"parent": parent}


def test_count_catches_a_duplicate_and_a_loss(slow: ModuleType, valkey_only_url: str) -> None:
    r = redis.Redis.from_url(valkey_only_url)
    for n in (0, 1, 1, 3):  # 1 twice (same input), 2 lost
        r.xadd("out", _out(f"1-{n}".encode(), n))  # type: ignore[arg-type]
    run = slow.Run("reference", 4, 4, 1.0, 0.1, 40.0)
    slow._count(r, "out", 4, False, run)
    assert (run.outputs, run.distinct, run.missing) == (4, 3, 1)


def test_count_pages_through_a_long_stream(slow: ModuleType, valkey_only_url: str) -> None:
    r = redis.Redis.from_url(valkey_only_url)
    pipe = r.pipeline(transaction=False)
    for n in range(25_000):
        pipe.xadd("out", _out(f"1-{n}".encode(), n))  # type: ignore[arg-type]
    pipe.execute()
    run = slow.Run("reference", 4, 25_000, 1.0, 0.1, 40.0)
    slow._count(r, "out", 25_000, False, run)
    assert (run.outputs, run.distinct, run.missing) == (25_000, 25_000, 0)


def test_count_reads_faststream_replies(slow: ModuleType, valkey_only_url: str) -> None:
    pytest.importorskip("faststream", reason="the bench extra is not installed")
    r = redis.Redis.from_url(valkey_only_url)
    for fields in slow.faststream_inputs(3) + slow.faststream_inputs(1):  # m0 twice
        r.xadd("out", fields)  # type: ignore[arg-type]
    run = slow.Run("faststream", 4, 3, 1.0, 0.1, 40.0)
    slow._count(r, "out", 3, True, run)
    assert (run.outputs, run.distinct, run.missing) == (4, 3, 0)


def test_a_child_can_import_meshc_from_a_baseline_tree(tmp_path: Path) -> None:
    """``--baseline DIR``: the benchmark modules must not import meshc before the child
    points ``sys.path`` at DIR, or every A/B run would measure this tree twice."""
    shutil.copytree(ROOT / "meshc", tmp_path / "meshc", ignore=shutil.ignore_patterns("*.pyc"))
    code = (
        "import sys; import bench.slow, bench.slow_consumers, bench.hop, bench.fanout;"
        "from bench.common import use_meshc_from; use_meshc_from(sys.argv[1]);"
        "import meshc.runtime.worker as w; print(w.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(tmp_path)


def test_a_contestant_that_does_not_finish_is_reported_not_fatal(
    slow: ModuleType, valkey_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer too slow to wait for (or dead) must not throw away the other rows of a
    ten-minute run: its row has no time, and the report says why."""
    pytest.importorskip("psutil", reason="the bench extra is not installed")
    monkeypatch.setattr(slow, "wait_length", lambda *args, **kwargs: None)
    r = redis.Redis.from_url(valkey_only_url)
    run = slow._measure(valkey_only_url, r, "reference", 32, 20, None)
    assert run.seconds != run.seconds  # NaN
    assert run.failure.endswith("20 outputs did not appear: not within 60 s")
    others = [slow.Run(k, c, 20, 1.0, 0.1, 40.0) for k, c in slow.contestants(None)]
    report = slow._report([run, *others[1:]], "smoke", None)
    assert f"FAILED: {run.failure}" in report.notes
    assert report.tables[0].rows[0][3] != report.tables[0].rows[0][3]  # no time: NaN
