"""Writes the generated pages of the docs site: everything under ``docs/reference/``.

    python docs/gen.py            # refresh docs/reference/
    python docs/gen.py --check    # exit 1 with a diff when a page is stale

The pages are made from what they describe, so they cannot drift from it: the mesh
language from the JSON Schema, one page per command from the argument parsers, the
diagnostic codes from ``meshc.codes`` with an example of each, run. They are written
through meshc's own writer of generated files (``meshc.codegen.writer``), which
replaces the folder's files and removes those no longer made, the same bytes on every
run; a test (tests/docs/test_reference.py) fails when the committed pages are stale.

Committed rather than made at build time (e.g. by the mkdocs-gen-files plugin): the
pages can be read in the repository as they are, a change to a command shows up in
review as a change to its page, and the freshness test needs no MkDocs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from gen_codes import code_pages
from gen_commands import command_pages
from gen_schema import language_page
from meshc.codegen.writer import diff_package, write_package

REFERENCE = Path(__file__).resolve().parent / "reference"


def pages() -> dict[str, bytes]:
    """{path under docs/reference/: bytes} of every generated page and example."""
    with tempfile.TemporaryDirectory(prefix="meshc-docs-") as scratch:
        files = {**language_page(), **command_pages(), **code_pages(Path(scratch))}
    return dict(sorted(files.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the generated pages of docs/reference/.")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff when stale"
    )
    args = parser.parse_args(argv)
    files = pages()
    if args.check:
        diff = diff_package(REFERENCE, files)
        sys.stdout.write(diff)
        if diff:
            print("docs/reference/ is stale: run python docs/gen.py", file=sys.stderr)
            return 1
        return 0
    changed = write_package(REFERENCE, files)
    print(f"docs/reference: {len(files)} files, {len(changed)} changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
