"""README's Environment table names every MESHC_* variable meshc reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"MESHC_[A-Z0-9_]*[A-Z0-9]_?")


def _read_by_meshc() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "meshc").rglob("*")):
        if path.suffix in (".py", ".j2"):
            found |= set(NAME.findall(path.read_text(encoding="utf-8")))
    return found


def _environment_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Environment")
    return text[start : text.index("\n## ", start)]


def test_every_variable_meshc_reads_is_in_the_readme() -> None:
    names = _read_by_meshc()
    assert {"MESHC_LOG_LEVEL", "MESHC_DEBUG", "MESHC_ACL_PASSWORD_"} <= names
    section = _environment_section()
    missing = sorted(n for n in names if f"`{n}" not in section)
    assert not missing, f"README.md's Environment table lacks {', '.join(missing)}"
