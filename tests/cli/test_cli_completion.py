"""``meshc completion bash|zsh|fish``: each script, loaded in its real shell, offers
the commands, subcommands, options, choices and files a user expects there."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from meshc.cli import COMMANDS, build_parser, main
from meshc.completion import commands, script
from meshc.render import FORMATS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOP = sorted(COMMANDS)
# (line typed, what the shell must offer at its end); run from the repository root.
CASES = [
    ("meshc ", TOP),
    ("meshc va", ["validate"]),
    ("meshc dlq ", ["list", "redrive"]),
    ("meshc server st", ["start", "status", "stop"]),
    ("meshc render --format ", sorted(FORMATS)),
    ("meshc dlq list --format ", ["json", "text"]),
    ("meshc completion ", ["bash", "fish", "zsh"]),
    ("meshc server status --", ["--help"]),  # not the options of `meshc status`
    ("meshc status --f", ["--format"]),
    ("meshc validate --format json meshes/pipe", ["meshes/pipeline.py", "meshes/pipeline.yaml"]),
    ("meshc render -o READ", ["README.md"]),
    ("meshc run --redis ", []),  # a URL: nothing to guess
]


def shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completion")
    out = {}
    for name in ("bash", "zsh", "fish"):
        out[name] = folder / f"meshc.{name}"
        out[name].write_text(script(name, build_parser()))
    return out


def _bash(path: Path, line: str) -> list[str]:
    words = line.split(" ")
    program = (
        f"source {path}\n"
        "COMP_WORDS=(" + " ".join(_sh(w) for w in words) + ")\n"
        f"COMP_CWORD={len(words) - 1}\n"
        '_meshc\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [shell("bash"), "--norc", "-c", program], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return sorted(filter(None, done.stdout.splitlines()))


def _sh(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def _zsh(path: Path, line: str, tmp: Path) -> list[str]:
    hits = tmp / "hits"
    hits.unlink(missing_ok=True)
    subprocess.run(
        [shell("zsh"), "-f", str(HERE / "zsh_complete.zsh"), str(path), str(hits), line],
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    found = hits.read_text().splitlines() if hits.exists() else []
    return sorted(set(filter(None, found)))


def _fish(path: Path, line: str) -> list[str]:
    done = subprocess.run(
        [shell("fish"), "--no-config", "-c", f"source {path}; complete -C {_sh(line)}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return sorted(row.split("\t")[0] for row in done.stdout.splitlines())


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_bash_offers_what_is_expected(
    scripts: dict[str, Path], line: str, expected: list[str]
) -> None:
    assert _bash(scripts["bash"], line) == expected


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_zsh_offers_what_is_expected(
    scripts: dict[str, Path], tmp_path: Path, line: str, expected: list[str]
) -> None:
    # zsh hands files to compadd without their folder (it adds that as a prefix)
    assert _zsh(scripts["zsh"], line, tmp_path) == [os.path.basename(e) for e in expected]


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_fish_offers_what_is_expected(
    scripts: dict[str, Path], line: str, expected: list[str]
) -> None:
    assert _fish(scripts["fish"], line) == expected


def test_bash_skips_option_values_and_follows_equals(scripts: dict[str, Path]) -> None:
    # `--format json` then a second positional: render takes one FILE, nothing after it
    assert _bash(scripts["bash"], "meshc submit meshes/pipeline.yaml --json {} x") == []
    assert "json" in _bash(scripts["bash"], "meshc validate --format = j")


def test_the_scripts_are_made_from_the_parsers(tmp_path: Path) -> None:
    """A command registered anywhere completes without touching the scripts."""
    parser = argparse.ArgumentParser(prog="meshc")
    sub = parser.add_subparsers()
    brew = sub.add_parser("brew", help="make tea")
    brew.add_argument("--flavour", choices=("green", "black"), help="which tea")
    brew.add_argument("file", metavar="FILE", help="recipe")
    path = tmp_path / "toy.bash"
    path.write_text(script("bash", parser))
    assert _bash(path, "meshc ") == ["brew"]
    assert _bash(path, "meshc brew --flavour ") == ["black", "green"]
    assert _bash(path, "meshc brew -") == ["--flavour", "--help", "-h"]


def test_every_command_is_in_every_script(scripts: dict[str, Path]) -> None:
    paths = [c.key for c in commands(build_parser()) if c.key]
    assert "dlq list" in paths and "completion" in paths
    for name, path in scripts.items():
        text = path.read_text()
        for key in paths:
            assert key in text, f"{name} script lacks {key}"


def test_the_command_prints_the_same_bytes_each_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("bash", "zsh", "fish"):
        assert main(["completion", name]) == 0
        first = capsys.readouterr().out
        assert main(["completion", name]) == 0
        assert capsys.readouterr().out == first
        assert first.startswith(("#", "#compdef"))


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["completion", "tcsh"])
    assert done.value.code == 2
    assert "invalid choice: 'tcsh'" in capsys.readouterr().err
