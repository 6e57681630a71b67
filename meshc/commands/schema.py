"""``meshc schema``: the JSON Schema of mesh files (for editors)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from meshc.codegen.writer import write_file
from meshc.model import json_schema


def register(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of mesh files", description=__doc__)
    p.add_argument("-o", "--output", metavar="PATH", help="write to this file instead of stdout")
    p.set_defaults(handler=run)


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def run(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output:
        try:
            write_file(Path(args.output), text.encode("utf-8"), parents=False)
        except OSError as err:
            print(f"{args.output}: error: cannot write: {err.strerror or err}", file=sys.stderr)
            return 2
    else:
        print(text, end="")
    return 0
