"""Benchmark: `analyze_file` on generated meshes of 100 to 100,000 agents.

Each size is written as YAML (bench/meshgen.py: one producer, a root coordinator
fanning out to regions, coordinators fanning out to lanes, chains of specialists,
aggregators; about 2 streams per agent) and validated in fresh child processes, one
per run, so no run's memory weighs on another. Runs go in rounds (every size once
per round), and each size keeps its best of ``--runs`` (7) rounds, alike for every
size: a ratio of a best-of-3 to a single run would flatter the small size. Shown:
wall and CPU time, the peak memory the analysis added (the peak resident size after
it, less the peak after the imports), and the growth of time against the growth of
size; the target is 10,000 agents under 1 s and a 10x bigger mesh taking at most
11x the time.

Beside it, in the same rounds, a reference: orjson building the same data from JSON
("build"), C code that only makes the dicts, lists and strings. No program that
makes Python objects in proportion to its input grows more slowly than that on this
machine (caches and memory, not work, set it), so its growth is the floor to read
the validator's against.

    python -m bench.validate                 # 100, 1,000, 10,000, 100,000 agents
    python -m bench.validate --sizes 100,1000 --json bench/results/validate.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.meshgen import generate

DEFAULT_SIZES = (100, 1_000, 10_000, 100_000)
TARGET_AGENTS, TARGET_SECONDS, TARGET_GROWTH = 10_000, 1.0, 1.1


@dataclass
class Row:
    agents: int
    streams: int
    file_mb: float
    seconds: float  # best wall time of `runs`
    cpu_seconds: float  # CPU time of that run
    peak_mb: float  # memory the analysis added at its peak
    runs: int
    diagnostics: int
    build_seconds: float = 0.0  # reference: orjson building the same data (best of `runs`)
    growth: float | None = None  # (time ratio) / (size ratio) against the previous row
    cpu_growth: float | None = None  # the same with CPU time, steadier on a busy machine
    build_growth: float | None = None  # the reference's growth: this machine's floor


def peak_rss_kib() -> int:
    """This process's peak resident memory. Linux's VmHWM, where there is one:
    ``ru_maxrss`` carries over the peak of the parent a child was forked from, which
    hides a small child's own peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def measure(path: str) -> dict[str, Any]:
    """In the child: import, then time one `analyze_file` (the parent keeps the best
    of its rounds, each a fresh process)."""
    from meshc.api import analyze_file

    base = peak_rss_kib()
    wall, cpu = time.perf_counter(), time.process_time()
    analysis = analyze_file(path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = peak_rss_kib() - base
    return {"seconds": wall, "cpu": cpu, "peak_kib": peak, "diagnostics": len(analysis.diagnostics)}


def reference(path: str) -> dict[str, Any]:
    """In the child: the time to build the mesh's data alone, from JSON with orjson
    (C code that makes the same dicts, lists and strings and nothing else)."""
    import orjson

    raw = Path(path).read_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    data = orjson.loads(raw)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    del data
    return {"seconds": wall, "cpu": cpu}


def run_child(path: Path, mode: str = "--child") -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-m", "bench.validate", mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    measured: dict[str, Any] = json.loads(child.stdout)
    return measured


def run_sizes(sizes: list[int], folder: Path, runs: int) -> list[Row]:
    """``runs`` rounds, each validating every size once: a spell when the machine is
    busier slows one round of all sizes, not all runs of one size."""
    import orjson
    from meshc.source import load_file

    meshes = [generate(agents) for agents in sizes]
    paths = [folder / f"mesh_{mesh.agents}.yaml" for mesh in meshes]
    jsons = [path.with_suffix(".json") for path in paths]
    for mesh, path, as_json in zip(meshes, paths, jsons, strict=True):
        path.write_text(mesh.text, encoding="utf-8")
        as_json.write_bytes(orjson.dumps(load_file(str(path)).data))
    measured: list[list[dict[str, Any]]] = [[] for _ in sizes]
    built: list[list[dict[str, Any]]] = [[] for _ in sizes]
    for _ in range(runs):
        for path, as_json, found, ref in zip(paths, jsons, measured, built, strict=True):
            found.append(run_child(path))
            ref.append(run_child(as_json, "--reference"))
    rows = []
    for mesh, path, found, ref in zip(meshes, paths, measured, built, strict=True):
        got = min(found, key=lambda m: (m["seconds"], m["cpu"]))
        rows.append(
            Row(
                agents=mesh.agents,
                streams=mesh.streams,
                file_mb=round(path.stat().st_size / 1e6, 2),
                seconds=round(got["seconds"], 4),
                cpu_seconds=round(got["cpu"], 4),
                peak_mb=round(max(m["peak_kib"] for m in found) / 1024, 1),
                runs=runs,
                diagnostics=got["diagnostics"],
                build_seconds=round(min(m["seconds"] for m in ref), 4),
            )
        )
    return rows


def with_growth(rows: list[Row]) -> list[Row]:
    for before, row in zip(rows, rows[1:], strict=False):
        size = row.agents / before.agents
        row.growth = round(row.seconds / before.seconds / size, 3)
        row.cpu_growth = round(row.cpu_seconds / before.cpu_seconds / size, 3)
        if before.build_seconds > 0:
            row.build_growth = round(row.build_seconds / before.build_seconds / size, 3)
    return rows


def table(rows: list[Row]) -> str:
    head = (
        f"{'agents':>8} {'streams':>8} {'file MB':>8} {'seconds':>8} {'cpu s':>7} "
        f"{'peak MB':>8} {'time x / size x':>16} {'cpu x':>6} {'build s':>8} {'build x':>8}"
    )
    lines = [head, "-" * len(head)]
    for before, row in zip([None, *rows], rows, strict=False):
        growth, cpu, build = "", "", ""
        if before is not None:
            size = row.agents / before.agents
            growth = f"{row.seconds / before.seconds:6.1f} / {size:<5.0f}"
            cpu = f"{row.cpu_seconds / before.cpu_seconds:6.1f}"
            if before.build_seconds > 0:
                build = f"{row.build_seconds / before.build_seconds:6.1f}"
        lines.append(
            f"{row.agents:>8,} {row.streams:>8,} {row.file_mb:>8.2f} {row.seconds:>8.3f} "
            f"{row.cpu_seconds:>7.3f} {row.peak_mb:>8.1f} {growth:>16} {cpu:>6} "
            f"{row.build_seconds:>8.4f} {build:>8}"
        )
    return "\n".join(lines)


def verdict(rows: list[Row]) -> dict[str, Any]:
    at_target = [r for r in rows if r.agents == TARGET_AGENTS]
    growths = [r.growth for r in rows if r.growth is not None]
    cpu_growths = [r.cpu_growth for r in rows if r.cpu_growth is not None]
    return {
        "clean": all(r.diagnostics == 0 for r in rows),
        "target_seconds_at_10k": TARGET_SECONDS,
        "under_target_at_10k": bool(at_target) and at_target[0].seconds < TARGET_SECONDS,
        "max_growth": max(growths) if growths else None,
        "max_cpu_growth": max(cpu_growths) if cpu_growths else None,
        "growth_within_target": all(g <= TARGET_GROWTH for g in growths),
        "max_build_growth": max(
            (r.build_growth for r in rows if r.build_growth is not None), default=None
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validate", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--json", metavar="PATH", help="also write the JSON result here")
    parser.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--reference", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument(
        "--runs", type=int, default=7, help="rounds of runs, each in a fresh process (best kept)"
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    if args.reference:
        print(json.dumps(reference(args.reference)))
        return 0
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="meshc-bench-") as tmp:
        rows = with_growth(run_sizes(sizes, Path(tmp), args.runs))
    outcome = verdict(rows)
    result = {
        "benchmark": "validate",
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "rows": [asdict(r) for r in rows],
        "verdict": outcome,
    }
    print(table(rows))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if outcome["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
