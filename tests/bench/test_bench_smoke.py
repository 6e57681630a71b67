"""Each benchmark runs in its tiniest mode and hands back a well-formed report.

These prove the scripts work (servers start, children speak the READY/GO protocol,
every contestant drains its messages, tables and JSON come out); they assert the
structure of the results, never timings, which mean nothing on a busy test machine.
Needs the ``bench`` extra (FastStream, Celery, psutil): ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("faststream", "celery", "psutil")
pytestmark = pytest.mark.timeout(180)


def _bench(name: str) -> ModuleType:
    """Import ``bench.<name>`` from the repository (it is not an installed package)."""
    for extra in EXTRAS:
        pytest.importorskip(extra, reason="the bench extra is not installed")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"bench.{name}")


def _check_report(doc: dict[str, Any], name: str) -> None:
    assert doc["name"] == name
    assert doc["tables"], "a benchmark prints at least one table"
    for table in doc["tables"]:
        assert table["title"] and table["columns"]
        assert table["rows"], f"{table['title']}: no rows"
        for row in table["rows"]:
            assert len(row) == len(table["columns"]), f"{table['title']}: ragged row {row}"
    for check in doc["checks"]:
        assert check["op"] in (">=", "<=")
        assert isinstance(check["value"], int | float) and math.isfinite(check["value"])
        assert isinstance(check["ok"], bool)
    json.dumps(doc)  # everything in it is JSON


def _numbers(doc: dict[str, Any], title_start: str, column: str) -> list[float]:
    table = next(t for t in doc["tables"] if t["title"].startswith(title_start))
    i = table["columns"].index(column)
    return [row[i] for row in table["rows"]]


def test_hop() -> None:
    doc = _bench("hop").run("smoke").as_dict()
    _check_report(doc, "hop")
    rates = _numbers(doc, "1.", "msg/s (median)")
    assert len(rates) == 7 and all(r > 0 for r in rates)  # metrics on and traced too
    assert _numbers(doc, "2.", "msg/s (median)")[0] > 0  # FastStream drained its messages
    assert [c["name"] for c in doc["checks"]] == [
        "hop: meshc Worker / raw MULTI loop",
        "peer: meshc Worker / FastStream",
    ]


def test_fanout() -> None:
    doc = _bench("fanout").run("smoke").as_dict()
    _check_report(doc, "fanout")
    p50 = _numbers(doc, "3a.", "p50 ms")
    assert len(p50) == 3 and all(ms >= 200 for ms in p50)  # every system waited on its lanes
    assert len(doc["tables"]) == 3
    assert len(doc["checks"]) == 5


def test_replicas() -> None:
    doc = _bench("replicas").run("smoke").as_dict()
    _check_report(doc, "replicas")
    rows = doc["tables"][0]["rows"]
    assert len(rows) == 5  # cpu x (1, 2), io x (1, 2), io with concurrency 4
    assert all(rate > 0 for rate in _numbers(doc, "4.", "tasks/s"))


def test_memory() -> None:
    doc = _bench("memory").run("smoke").as_dict()
    _check_report(doc, "memory")
    assert all(mb > 0 for mb in _numbers(doc, "5a.", "RSS MB"))
    assert all(b > 0 for b in _numbers(doc, "5b.", "bytes per entry"))


def test_gateway() -> None:
    pytest.importorskip("uvicorn", reason="meshc[serve] is not installed")
    doc = _bench("gateway").run("smoke").as_dict()
    _check_report(doc, "gateway")
    rows = doc["tables"][0]["rows"]
    assert [r[0] for r in rows] == ["MeshClient submit + wait", "gateway POST + GET ?wait"]
    assert all(r[1] == 20 and r[2] > 0 for r in rows)  # every task came back, both ways
    (held,) = doc["tables"][1]["rows"]
    assert held[0] == 50 and held[4] == 50  # all held at once, all answered 200
    assert [c["name"] for c in doc["checks"]][0] == "gateway adds to a task's p50"


def test_run_all_writes_json(tmp_path: Path) -> None:
    run_all = _bench("run_all")
    out = tmp_path / "all.json"
    assert run_all.main(["--smoke", "--only", "validate", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["mode"] == "smoke"
    assert {"nproc", "cpu", "python", "server"} <= set(doc["machine"])
    assert [b["name"] for b in doc["benchmarks"]] == ["validate"]
    _check_report(doc["benchmarks"][0], "validate")
    assert doc["targets"] == len(doc["benchmarks"][0]["checks"])


def test_slow() -> None:
    """Every contestant drains its input exactly once; the report has every row."""
    slow = _bench("slow")
    doc = slow.run("smoke").as_dict()
    assert not [note for note in doc["notes"] if note.startswith("FAILED")]
    _check_report(doc, "slow")
    kinds = slow.contestants(None, "smoke")
    expected = [(slow.NAMES[k], c, slow.messages(c, 0.25)) for k, c in kinds]
    main, delivery = doc["tables"]
    assert [(r[0], r[1], r[2]) for r in main["rows"]] == expected
    assert [(r[0], r[1], r[2]) for r in delivery["rows"]] == expected
    assert {r[0] for r in delivery["rows"]} == set(slow.NAMES.values()) - {slow.NAMES["meshc-base"]}
    for name, c, n, outputs, distinct, missing in delivery["rows"]:
        assert (outputs, distinct, missing) == (n, n, 0), f"{name} at {c}"
    peaks = _numbers(doc, "7.", "peak RSS MB")
    assert all(mb > 10 for mb in peaks)  # sampled from a live Python process
    assert [c["name"].split(" (")[0] for c in doc["checks"]] == [
        "slow: meshc async at 32 / ideal",
        "slow: meshc async at 256 / ideal",
        "slow: meshc async at 1024 / ideal",
        "slow: meshc plain at 32 / ideal",
        "slow: meshc worker RSS, 1,024 in flight",
    ]
