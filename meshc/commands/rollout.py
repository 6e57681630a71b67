"""``meshc rollout OLD NEW``: move a running mesh from OLD to NEW (a plan; ``--apply``).

Against a live server, prints what moving from OLD to NEW takes: consumer groups to
create for new reads (at the end of their stream: a new reader of an existing stream
takes what is written from the rollout on; ``meshc replay`` runs it over older
entries; a new lane's stream starts empty), agents to start, agents to restart
(downstream first), agents to drain (their input finished, nothing pending) and stop,
groups to destroy. It refuses, exit 1, when ``meshc diff`` says a change breaks work
in flight that draining cannot save, unless ``--force``.

``--apply`` updates the server's record of the running mesh and sends SIGHUP to the
``meshc run`` that runs it, which restarts only the changed agents, then waits until
that run has loaded NEW. With no run alive it prepares the server for ``meshc run
NEW``. Exit codes: 0 done (or a plan that can be applied), 1 refused or not done in
time, 2 usage errors or a file that cannot be opened.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from meshc.api import Analysis, analyze_file
from meshc.commands.common import REDIS_HELP, fail, guarded, load, server_url
from meshc.commands.output import add_color_option, cannot_open, emit
from meshc.ops.rollout import Rollout, apply, plan
from meshc.runtime.connect import connect, redact

NAME = "rollout"


def register(sub: Any) -> None:
    p = sub.add_parser(
        NAME,
        help="move a running mesh from one version to the next (plan; --apply)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", metavar="OLD", help="the mesh file that runs now")
    p.add_argument("new", metavar="NEW", help="the mesh file to move to")
    p.add_argument("--redis", metavar="URL", help=REDIS_HELP)
    p.add_argument("--apply", action="store_true", help="carry the plan out (default: print it)")
    p.add_argument(
        "--force",
        action="store_true",
        help="go on although a change breaks work in flight (what breaks is printed)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long --apply waits for `meshc run` to load NEW (default 600)",
    )
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="the plan as text or JSON"
    )
    add_color_option(p)
    p.set_defaults(handler=guarded(NAME, run))


def run(args: argparse.Namespace) -> int:
    analyses: list[Analysis] = []
    for path in (args.old, args.new):
        try:
            analyses.append(analyze_file(path))
        except OSError as err:
            return cannot_open(path, err)
    invalid = [a for a in analyses if not a.ok]
    if invalid:
        emit(invalid, "text", args.color)
        return 1
    old_core, new_core = (a.core for a in analyses)
    assert old_core is not None and new_core is not None
    old = load(args.old)[1]
    new = load(args.new)[1]
    url = server_url(args.redis)
    with connect(url) as client:
        r = plan(client, old_core, new_core, old, new, (args.old, args.new))
        print(orjson.dumps(r.to_json(), option=orjson.OPT_INDENT_2).decode()
              if args.format == "json" else describe(r, redact(url)))  # fmt: skip
        refused = _refusal(r, args.force)
        if refused:
            return fail(NAME, refused, 1)
        if r.at_new:
            print(f"{new.name} already runs v{new.version} ({new.fingerprint}): nothing to do")
            return 0
        if not args.apply:
            return 0
        return apply(client, r, args.new, wait=args.wait, say=_say)


def _say(line: str) -> None:
    print(line, flush=True)


def _refusal(r: Rollout, force: bool) -> str | None:
    if force or not (r.blocking or r.problems):
        return None
    why = [*r.problems, *(f"{f.message}: {f.reason}" if f.reason else f.message
                         for f in r.blocking)]  # fmt: skip
    return (
        "refused: " + "; ".join(why) + ". Let the streams drain first (`meshc status`), "
        "or --force to go on anyway"
    )


def describe(r: Rollout, where: str) -> str:
    """The plan as text, one step a line."""
    s = r.steps
    lines = [
        f"rollout {r.new.name} v{r.old.version} ({r.old.fingerprint}) -> v{r.new.version} "
        f"({r.new.fingerprint}) on {where}",
        f"  running: {r.running_text()}",
    ]

    def step(title: str, items: list[str]) -> None:
        lines.append(f"  {title}: {', '.join(items) if items else '-'}")

    step("create groups at the stream's end", [f"{a} on {st}" for a, st in s.new_reads])
    step("start", list(s.added))
    step("restart, downstream first", list(s.restart))
    step("drain, then stop", list(s.removed))
    step("drain, then restart", list(s.after_drain))
    step("destroy groups", [f"{a} on {st}" for a, st in s.gone_reads])
    c = r.report.counts()
    lines.append(
        f"  diff: {len(r.report.findings)} changes: {c['breaks']} breaks, "
        f"{c['restart']} restart, {c['safe']} safe"
    )
    for f in r.blocking:
        lines.append(f"  breaks: {f.message}" + (f" ({f.reason})" if f.reason else ""))
    return "\n".join(lines)
