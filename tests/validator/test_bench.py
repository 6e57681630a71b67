"""The validator benchmark's meshes are valid, and validation time grows linearly.

The timing test compares two sizes measured in the same process (CPU time, best of
3), so a slow or busy machine slows both: a quadratic check (the kind the fan-width
check once had) makes the ratio ~100, a linear one ~10.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time

import pytest
from corpus import ROOT
from meshc.api import analyze_text

if str(ROOT) not in sys.path:  # `bench` is a folder of the repository, not installed
    sys.path.insert(0, str(ROOT))
generate = importlib.import_module("bench.meshgen").generate


@pytest.mark.parametrize("agents", [2, 3, 11, 12, 13, 100, 1000])
def test_generated_meshes_are_valid(agents: int) -> None:
    mesh = generate(agents)
    assert mesh.agents == agents
    assert analyze_text(mesh.text).diagnostics == []


def test_about_two_streams_per_agent() -> None:
    mesh = generate(1000)
    assert 1.8 <= mesh.streams / mesh.agents <= 2.3


def _cpu(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        analyze_text(text)
        best = min(best, time.process_time() - start)
    return best


def test_validation_time_grows_linearly() -> None:
    small, large = generate(300).text, generate(3000).text
    ratio = _cpu(large) / _cpu(small)
    assert ratio < 25, f"10x the agents took {ratio:.1f}x the time"


def test_bench_command(tmp_path: pytest.TempPathFactory) -> None:
    out = tmp_path / "validate.json"  # type: ignore[operator]
    done = subprocess.run(
        [sys.executable, "-m", "bench.validate", "--sizes", "100,1000", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "agents" in done.stdout.splitlines()[0]
    result = json.loads(out.read_text())
    assert [r["agents"] for r in result["rows"]] == [100, 1000]
    for row in result["rows"]:  # the fields bench/run_all.py reads
        for key in ("streams", "file_mb", "seconds", "cpu_seconds", "peak_mb", "diagnostics"):
            assert key in row
        assert row["diagnostics"] == 0
    assert result["rows"][1]["growth"] is not None
    assert {"target_seconds_at_10k", "max_growth", "clean"} <= set(result["verdict"])
