"""``meshc diff`` on the command line: exit codes, the three formats, colour, servers,
and no traceback whatever it is given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from meshc.cli import build_parser, main
from meshc.runtime.connect import redact
from meshc.runtime.process.server import ensure_server, stop_server

CORPUS = Path(__file__).parent / "corpus"


def _pair(case: str) -> list[str]:
    return [str(CORPUS / case / "old.yaml"), str(CORPUS / case / "new.yaml")]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["diff", *args])
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder whose embedded server is not running, and no REDIS_URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("case", "code"),
    [("unchanged", 0), ("version_and_descriptions", 0), ("handler_changed", 0),
     ("required_field_added", 1), ("lane_removed", 1)],
)  # fmt: skip
def test_exit_code_follows_the_worst_finding(
    case: str, code: int, no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, *_pair(case))[0] == code


def test_text_is_grouped_and_says_what_depends_on_the_server(
    no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, *_pair("lane_removed"), "--color", "never")
    assert code == 1 and "\x1b[" not in out
    assert out.splitlines()[0] == "meshc diff: shop v1 → v1: breaks in-flight work"
    sections = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert sections[1:5] == [
        "Streams",
        "Agents",
        "Joins",
        "5 changes: 3 breaks, 2 restart (3 depending on the server)",
    ]
    assert "  breaks?  stream `orders.address` removed  [stream-removed]" in out
    assert "breaks if `orders.address` still holds unprocessed entries, else safe" in out
    assert out.rstrip().endswith("restart: decide, split; stop: address")


def test_color_always_paints_levels(no_server: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, *_pair("handler_changed"), "--color", "always")[1]
    assert "\x1b[33mrestart " in out and "\x1b[0m" in out


def test_json_is_stable_and_deterministic(
    no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(capsys, *_pair("family_lane_swapped"), "--format", "json")[1]
    assert _run(capsys, *_pair("family_lane_swapped"), "--format", "json")[1] == first
    doc = json.loads(first)
    assert sorted(doc) == ["actions", "counts", "findings", "level", "new", "old", "schema",
                           "server"]  # fmt: skip
    assert doc["schema"] == 1 and doc["server"] is None and doc["level"] == "breaks"
    assert doc["actions"] == {"restart": ["fan", "merge"], "start": ["style"], "stop": ["tone"]}
    keys = {"rule", "kind", "subject", "change", "message", "level", "worst", "if_clear",
            "conditions", "settled", "evidence", "reason", "advice", "actions", "streams",
            "family"}  # fmt: skip
    assert all(set(f) == keys for f in doc["findings"])
    removed = next(f for f in doc["findings"] if f["subject"] == "review.in.tone")
    assert removed["conditions"] == [
        {"kind": "unprocessed", "streams": ["review.in.tone"], "group": None, "agents": []}
    ]


def test_markdown_is_one_table_with_pipes_escaped(
    no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, *_pair("field_made_optional"), "--format", "markdown")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("### `meshc diff`: `shop` v1 → v1: **needs restarts**")
    assert "| level | change | why | what to do |" in lines
    row = next(line for line in lines if "made-optional" in line or "`ok`" in line)
    assert "`bool \\| None`" in row and row.count(" | ") == 3


def test_reads_the_embedded_server_when_it_runs(
    no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = ensure_server(no_server)
    try:
        code, out, _ = _run(capsys, *_pair("required_field_added"))
    finally:
        stop_server(no_server)
    assert code == 0, out  # an empty server: nothing old to read
    assert f"  server: {redact(info.url)}" in out and info.password not in out
    assert "clear: `orders.fraud` is empty; `orders.in` is" in out


def test_given_server_settles_and_breaks(
    valkey_url: str, no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with redis.Redis.from_url(valkey_url) as r:
        r.xadd("orders.in", {"data": b"{}"})
    code, out, _ = _run(capsys, *_pair("required_field_added"), "--redis", valkey_url)
    assert code == 1 and "; `orders.in` holds 1 entry, unfinished: split 1;" in out
    code, out, _ = _run(capsys, *_pair("required_field_added"), "--offline")
    assert "server: none read" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml", "also-missing.yaml"], "missing.yaml: error: cannot open"),
        ([".", "."], ": error: cannot open"),
        (["--redis", "redis://127.0.0.1:1", "A", "B"], "cannot open"),
        (["only-one.yaml"], "the following arguments are required: NEW"),
        (["--offline", "--redis", "redis://x", "a", "b"], "not allowed with argument"),
        (["a", "b", "--format", "yaml"], "invalid choice: 'yaml'"),
    ],
)
def test_usage_errors_and_unreadable_files_exit_2(
    args: list[str], message: str, no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_unreachable_server_exits_2(no_server: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, *_pair("handler_changed"), "--redis", "redis://127.0.0.1:1")
    assert code == 2 and "cannot reach the server at redis://127.0.0.1:1" in err


def test_invalid_or_broken_files_print_diagnostics_and_exit_1(
    no_server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (no_server / "binary.yaml").write_bytes(b"\xff\xfe\x00mesh")
    (no_server / "cycle.yaml").write_text("mesh: x\nstreams: {a: {type: Nope}}\n")
    good = str(CORPUS / "unchanged" / "old.yaml")
    code, out, err = _run(capsys, good, "binary.yaml")
    assert code == 1 and "binary.yaml:1:1: error:" in out and "MESH001" in out
    code, out, err = _run(capsys, "cycle.yaml", good, "--format", "json")
    report = json.loads(out)
    assert code == 1 and {d["code"] for d in report["diagnostics"]} >= {"MESH201"}
    assert "Traceback" not in err


def test_as_a_process_never_shows_a_traceback(no_server: Path) -> None:
    (no_server / "junk.yaml").write_text(": : [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "meshc", "diff", "junk.yaml", "junk.yaml"],
        capture_output=True, text=True, check=False, cwd=no_server,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert "MESH001" in proc.stdout


@pytest.mark.parametrize("command", ["diff", "trim"])
def test_every_option_has_help(command: str) -> None:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command")
    actions = sub.choices[command]._actions  # type: ignore[union-attr]
    missing = [a.option_strings or a.dest for a in actions if not a.help]
    assert missing == []
