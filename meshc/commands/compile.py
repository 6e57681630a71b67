"""``meshc compile FILE -o DIR``: write ``DIR/<mesh>/``, a runnable worker package.

``--deploy compose`` and/or ``--deploy kubernetes`` also write deployment files into
``DIR/<mesh>/deploy/`` (a compose file; Deployments and KEDA ScaledObjects), as
deterministic as the package. A compile without ``--deploy`` leaves them as they are.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meshc.api import analyze_file
from meshc.codegen import (
    CodegenError,
    compile_analysis,
    deploy,
    diff_package,
    package_dir,
    write_package,
)
from meshc.commands.output import add_color_option, cannot_open, emit


def register(sub: Any) -> None:
    p = sub.add_parser("compile", help="compile a mesh into worker modules", description=__doc__)
    p.add_argument("file", metavar="FILE", help="mesh file (YAML)")
    p.add_argument("-o", "--output", metavar="DIR", default="generated", help="default: generated")
    p.add_argument("--check", action="store_true", help="exit 1 with a diff when DIR is stale")
    p.add_argument(
        "--deploy",
        action="append",
        choices=deploy.KINDS,
        metavar="KIND",
        help="also write deployment files (compose, kubernetes; repeat for both) "
        "into DIR/<mesh>/deploy/",
    )
    add_color_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        analysis = analyze_file(args.file)
    except OSError as err:
        return cannot_open(args.file, err)
    if not analysis.ok:
        emit([analysis], "text", args.color)
        return 1
    assert analysis.core is not None
    try:
        files = compile_analysis(analysis, args.file)
    except CodegenError as err:
        print(f"meshc compile: {err}", file=sys.stderr)
        return 1
    folder = package_dir(args.output, analysis.core.name)
    kinds = sorted(set(args.deploy or ()))
    raw = analysis.source.text.encode("utf-8")
    files.update(deploy.deploy_files(analysis.core, args.file, raw, kinds, folder))
    if args.check:
        diff = diff_package(folder, files)
        if diff:
            sys.stdout.write(diff)
            print(
                f"{folder} is stale: run `meshc compile {args.file} -o {args.output}"
                + "".join(f" --deploy {k}" for k in kinds)
                + "`",
                file=sys.stderr,
            )
            return 1
        print(f"{folder} is up to date", file=sys.stderr)
        return 0
    changed = write_package(folder, files)
    print(f"{folder}: {len(files)} files, {len(changed)} changed", file=sys.stderr)
    return 0
