"""``meshc test`` from the command line: the examples pass, the broken example fails
naming its two faulty agents, and bad input gets a message and an exit code, never a
traceback."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from meshc.cli import main

ROOT = Path(__file__).resolve().parents[2]
BROKEN = "meshes/broken/broken_review.yaml"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def meshc_test(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["test", *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


def rows(out: str) -> dict[tuple[str, str], str]:
    """(check, subject) -> result, from the summary table."""
    found = {}
    for line in out.splitlines():
        m = re.match(
            r"  (contract|determinism|join order|end to end|exactly once|handler)\s+(\S+)"
            r"\s+\d+\s+(ok|FAIL|skip)",
            line,
        )
        if m:
            found[(m.group(1), m.group(2))] = m.group(3)
    return found


def test_doc_review_passes_with_defaults_well_within_a_minute(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    code, out, err = meshc_test(capsys, "meshes/doc_review.yaml")
    assert code == 0, out
    assert time.monotonic() - started < 60
    table = rows(out)
    for agent in ("coordinator", "grammar", "clarity", "tone", "structure", "aggregator"):
        assert table[("contract", agent)] == "ok"
        assert table[("determinism", agent)] == "ok"
    assert table[("join order", "aggregator")] == "ok"
    assert table[("end to end", "doc.review.tasks")] == "ok"
    assert re.search(r"all 14 checks passed in [\d.]+ s", out)
    assert "100 examples per check" in out
    assert "end to end · doc.review.tasks" in err  # the progress line


def test_the_broken_example_fails_naming_both_faulty_agents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = meshc_test(capsys, BROKEN, "--seed", "11")
    assert code == 1
    table = rows(out)
    assert table[("determinism", "stamp")] == "FAIL"
    assert table[("join order", "collector")] == "FAIL"
    assert table[("exactly once", "sample")] in ("ok", "skip")  # random, and says so
    assert table[("end to end", "broken.tasks")] == "ok"  # duplicates are absorbed
    failed = [k for k, v in table.items() if v == "FAIL"]
    assert sorted(failed) == [("determinism", "stamp"), ("join order", "collector")]
    assert "FAIL determinism · agent `stamp`" in out
    assert "FAIL join order · agent `collector`" in out
    assert (
        'smallest failing input (broken.lane.stamp, type Task):\n    {"doc_id":"","text":""}' in out
    )
    assert "parts in order words, stamp, sample:" in out
    assert "rerun: meshc test meshes/broken/broken_review.yaml --seed 11" in out
    assert "2 of 13 checks failed (determinism: stamp; join order: collector)" in out


def test_the_same_seed_gives_the_same_report(capsys: pytest.CaptureFixture[str]) -> None:
    def failures(out: str) -> list[str]:  # the counter's values go on, the inputs do not
        return [line for line in out.splitlines() if "review #" not in line and "in " not in line]

    args = (BROKEN, "--agent", "stamp", "--seed", "5", "--max-examples", "30")
    first = meshc_test(capsys, *args)
    second = meshc_test(capsys, *args)
    assert first[0] == second[0] == 1
    assert failures(first[1]) == failures(second[1])


@pytest.mark.parametrize("name", ["qa_slots", "pipeline", "doc_review_llm"])
def test_the_other_examples_pass(capsys: pytest.CaptureFixture[str], name: str) -> None:
    if not (ROOT / f"meshes/{name}.yaml").exists():
        pytest.skip(f"meshes/{name}.yaml is not in this checkout")
    code, out, _ = meshc_test(capsys, f"meshes/{name}.yaml", "--max-examples", "20")
    assert code == 0, out


def test_one_agent_only_skips_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = meshc_test(capsys, BROKEN, "--agent", "words", "--max-examples", "10")
    assert code == 0
    assert set(rows(out)) == {("contract", "words"), ("determinism", "words")}


def test_an_invalid_mesh_prints_its_diagnostics(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mesh: bad\nagents:\n  a:\n    role: specialist\n    reads: [nowhere]\n")
    code, out, err = meshc_test(capsys, str(bad))
    assert code == 1
    assert "[MESH104]" in out + err and "bad.yaml:5:" in out + err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.yaml"], "nope.yaml: error: cannot open"),
        ([BROKEN, "--agent", "ghost"], "the mesh has no agent 'ghost' (agents: collector,"),
        ([BROKEN, "--max-examples", "0"], "expected a positive integer"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "--max-examples" in args:
        with pytest.raises(SystemExit) as stop:
            main(["test", *args])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
        return
    code, _, err = meshc_test(capsys, *args)
    assert code == 2 and message in err


def test_a_handler_module_that_fails_to_import_is_a_failed_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exploding_handlers.py").write_text("raise SystemExit('no config')\n")
    text = (ROOT / "meshes/pipeline.yaml").read_text()
    text = text.replace("meshc.examples.pipeline:", "exploding_handlers:")
    (tmp_path / "mesh.yaml").write_text(text)
    code, out, _ = meshc_test(capsys, "mesh.yaml", "--max-examples", "5")
    assert code == 1
    assert rows(out)[("handler", "normalize")] == "FAIL"
    assert "SystemExit: no config" in out
    assert rows(out)[("end to end", "(mesh)")] == "skip"
