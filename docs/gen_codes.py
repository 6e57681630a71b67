"""The page of every diagnostic code, with an example mesh that triggers it.

For each code of ``meshc.codes``: its severity, title and ``--explain`` text, a small
mesh that makes ``meshc validate`` report it, and what ``meshc validate`` prints for
that mesh, run here. The examples come from the validator's test corpus
(``tests/validator/fixtures/meshNNN_*.yaml``, the smallest readable one per code),
with the corpus's expectation comments taken out; they are written next to the page
(``examples/MESHNNN.yaml``, and the handler modules the MESH30x ones import) so that
a reader can run the same command.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from meshc import codes
from meshc.cli import main
from meshc.codegen.writer import write_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "validator" / "fixtures"
EXAMPLES = "diagnostics/examples"
_EXPECTATION = re.compile(r"\s*#\s*[EWN]:\s*MESH\d{3}.*$")
_HEADER = re.compile(r"^#\s*(expect|resolve|max-bytes):")


def _readable(path: Path) -> str | None:
    """The fixture's text if it can serve as an example (UTF-8, no size override)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    return None if re.search(r"^#\s*max-bytes:", text, re.M) else text


def _example(code: str) -> tuple[str, bool]:
    """The smallest usable fixture of ``code``, cleaned; and whether it needs --resolve."""
    found = []
    for path in FIXTURES.glob(f"{code.lower()}_*.yaml"):
        text = _readable(path)
        if text is not None:
            found.append((len(text), path.name, text))
    if not found:
        raise SystemExit(f"no example for {code}: add tests/validator/fixtures/{code.lower()}_*")
    text = min(found)[2]
    resolve = bool(re.search(r"^#\s*resolve:\s*true", text, re.M))
    lines = [_EXPECTATION.sub("", line) for line in text.splitlines()]
    return "\n".join(line for line in lines if not _HEADER.match(line)) + "\n", resolve


def _validate(folder: Path, name: str, resolve: bool) -> tuple[str, str]:
    """The command and what it prints (stdout, then the summary on stderr), run here."""
    args = ["validate", *(["--resolve"] if resolve else []), "--color", "never", name]
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(args)
    finally:
        os.chdir(before)
    shown = "meshc " + " ".join(a for a in args if a not in ("--color", "never"))
    printed = out.getvalue() + err.getvalue()
    return shown, printed.replace(f"{folder}{os.sep}", "")  # paths as from that folder


def _section(code: codes.Code, text: str, command: str, printed: str, where: str) -> list[str]:
    return [
        f"## {code.code}",
        "",
        f"**{code.title}** ({code.severity})",
        "",
        *code.explain.split("\n"),
        "",
        f"Example, `{where}`:",
        "",
        "```yaml",
        text.rstrip("\n"),
        "```",
        "",
        "```text",
        f"$ {command}",
        printed.rstrip("\n"),
        "```",
        "",
    ]


def code_pages(scratch: Path) -> dict[str, bytes]:
    """The diagnostics page and its examples; ``scratch`` is an empty folder to run in."""
    files: dict[str, bytes] = {}
    page = [
        "# Diagnostic codes",
        "",
        "Every code `meshc validate` reports, with the text `meshc validate --explain CODE`",
        "prints, a mesh that triggers it and what validating that mesh prints. The",
        "examples are in `docs/reference/diagnostics/examples/`; the MESH30x ones are",
        "validated with `--resolve` from that folder, whose `handlers` package they import.",
        "",
    ]
    for code in codes.REGISTRY.values():
        text, _ = _example(code.code)
        name = f"{code.code}.yaml"
        files[f"{EXAMPLES}/{name}"] = text.encode("utf-8")
        write_file(scratch / name, text.encode("utf-8"))
        page += [f"- [{code.code}](#{code.code.lower()}): {code.title}"]
    for module in sorted((FIXTURES / "handlers").glob("*.py")):
        files[f"{EXAMPLES}/handlers/{module.name}"] = module.read_bytes()
        write_file(scratch / "handlers" / module.name, module.read_bytes())
    page.append("")
    for code in codes.REGISTRY.values():
        name = f"{code.code}.yaml"
        resolve = _example(code.code)[1]
        command, printed = _validate(scratch, name, resolve)
        where = f"docs/reference/{EXAMPLES}/{name}"
        page += _section(code, files[f"{EXAMPLES}/{name}"].decode(), command, printed, where)
    files["diagnostics/index.md"] = ("\n".join(page).rstrip("\n") + "\n").encode("utf-8")
    return files
