"""Run every benchmark and print its tables, a summary of targets, and JSON.

    python -m bench.run_all                  # everything, about 10 minutes
    python -m bench.run_all --quick          # a short version, about 2 minutes
    python -m bench.run_all --json out.json  # where the JSON goes (default below)
    python -m bench.run_all --only hop,memory
    python -m bench.run_all --only hop,fanout --baseline /tmp/base   # A/B a runtime change

Each benchmark starts its own server and processes and measures its figures against
a baseline in the same run (see BENCHMARKS.md). Benchmark 6 (compiler and validator
sizes) is ``bench.validate``, run as a child process and summarised here; benchmark 7
(``bench.slow``, slow LLM-shaped handlers) is the longest: most of its contestants
spend their time waiting, as model calls do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fanout, gateway, hop, memory, replicas, slow
from bench.common import (
    Check,
    Mode,
    Report,
    Table,
    add_baseline_arg,
    format_checks,
    machine,
    mode_of,
    server,
)

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
VALIDATE_SIZES: dict[Mode, str] = {
    "smoke": "100,1000",
    "quick": "100,1000,10000",
    "full": "100,1000,10000,100000",
}


def run_validate(mode: Mode = "full") -> Report:
    """Benchmark 6: ``python -m bench.validate`` (owned by the compiler's benchmark)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="meshc-bench-") as tmp:
        out = Path(tmp) / "validate.json"
        cmd = [sys.executable, "-m", "bench.validate", "--sizes", VALIDATE_SIZES[mode]]
        subprocess.run(
            [*cmd, "--json", str(out)],
            check=False,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        if not out.exists():
            raise RuntimeError(f"{' '.join(cmd[1:])} wrote no result")
        result = json.loads(out.read_text())
    table = Table(
        "6. Compiler: validating generated meshes (bench/validate.py)",
        [
            "agents",
            "streams",
            "file MB",
            "seconds",
            "CPU s",
            "peak MB",
            "diagnostics",
            "time growth / size growth",
            "build s (orjson)",
            "build growth / size growth",
        ],
    )
    for row in result["rows"]:
        table.rows.append(
            [
                row["agents"],
                row["streams"],
                float(row["file_mb"]),
                float(row["seconds"]),
                float(row["cpu_seconds"]),
                float(row["peak_mb"]),
                row["diagnostics"],
                float(row["growth"]) if row["growth"] is not None else "-",
                float(row["build_seconds"]),
                float(row["build_growth"]) if row.get("build_growth") is not None else "-",
            ]
        )
    verdict = result["verdict"]
    checks = [
        Check(
            "generated meshes validate clean (diagnostics)",
            sum(r["diagnostics"] for r in result["rows"]),
            "<=",
            0,
        )
    ]
    at_10k = [r for r in result["rows"] if r["agents"] == 10_000]
    if at_10k:
        checks.append(
            Check(
                "validate 10,000 agents",
                float(at_10k[0]["seconds"]),
                "<=",
                float(verdict["target_seconds_at_10k"]),
                "s",
            )
        )
    if verdict.get("max_growth") is not None:
        checks.append(
            Check("worst time growth / size growth", float(verdict["max_growth"]), "<=", 1.1)
        )
    report = Report("validate", [table], checks, [], {"sizes": VALIDATE_SIZES[mode]})
    report.seconds = time.perf_counter() - started
    return report


# Each takes the mode and the --baseline tree (used by the runtime benchmarks only).
BENCHMARKS: dict[str, Callable[[Mode, str | None], Report]] = {
    "hop": hop.run,
    "fanout": fanout.run,
    "replicas": lambda mode, _baseline: replicas.run(mode),
    "memory": lambda mode, _baseline: memory.run(mode),
    "validate": lambda mode, _baseline: run_validate(mode),
    "slow": slow.run,
    "gateway": lambda mode, _baseline: gateway.run(mode),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_all",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short version (about 2 min)")
    parser.add_argument("--smoke", action="store_true", help="the tiniest version, for tests")
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=str(DEFAULT_JSON),
        help=f"where to write the JSON report (default {DEFAULT_JSON})",
    )
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(BENCHMARKS))
    add_baseline_arg(parser)
    args = parser.parse_args(argv)
    mode = mode_of(args)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}")
    started = time.perf_counter()
    host = _machine()
    print(f"# meshc benchmarks ({mode})\n")
    print(" | ".join(f"{k}: {v}" for k, v in host.items()) + "\n", flush=True)
    reports: list[Report] = []
    for name in names:
        report = BENCHMARKS[name](mode, args.baseline)
        reports.append(report)
        print(report.text(), flush=True)
        print(f"({name}: {report.seconds:.0f} s)\n", flush=True)
    checks = [c for r in reports for c in r.checks]
    print("# Targets\n")
    print(format_checks(checks))
    total = time.perf_counter() - started
    doc: dict[str, Any] = {
        "mode": mode,
        "seconds": round(total, 1),
        "machine": host,
        "benchmarks": [r.as_dict() for r in reports],
        "targets_met": sum(c.ok for c in checks),
        "targets": len(checks),
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    print(f"\n{doc['targets_met']}/{doc['targets']} targets met in {total:.0f} s; JSON: {path}")
    return 0


def _machine() -> dict[str, Any]:
    with server() as srv:
        host = machine(srv)
    host["load_average_1m"] = round(os.getloadavg()[0], 2)
    return host


if __name__ == "__main__":
    sys.exit(main())
