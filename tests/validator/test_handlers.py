"""`--resolve`: MESH301 (import), MESH302 (signature), MESH303 (coupling) on small modules.

Each test writes handler modules into its own tmp_path and validates from there, the
way a user runs `meshc validate --resolve` from their project folder.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from meshc.api import analyze_text
from meshc.diagnostics import Diagnostic


def chain(*handlers: str) -> str:
    """A valid linear mesh: a producer, then one specialist per handler."""
    lines = ["mesh: chain", "types:", "  Doc: {id: str}", "streams:"]
    for i in range(len(handlers) + 1):
        terminal = ", terminal: true" if i == len(handlers) else ""
        lines.append(f"  s{i}: {{type: Doc{terminal}}}")
    lines += ["agents:", "  ingest: {role: producer, writes: [s0]}"]
    for i, handler in enumerate(handlers):
        lines.append(
            f'  a{i}: {{role: specialist, reads: [s{i}], writes: [s{i + 1}], handler: "{handler}"}}'
        )
    return "\n".join(lines) + "\n"


def line_of(text: str, agent: str) -> int:
    """The line of an agent's entry in a `chain` mesh (its handler is on it)."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(f"  {agent}:"))


def write(folder: Path, files: dict[str, str]) -> None:
    for name, body in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def resolve(text: str) -> list[Diagnostic]:
    return analyze_text(text, "mesh.yaml", resolve=True).diagnostics


def codes_of(diags: list[Diagnostic]) -> list[str]:
    return [d.code for d in diags]


GOOD = "def handle(payload, ctx):\n    return payload\n"


# ----------------------------------------------------------------------------- MESH301


def test_good_handler_resolves(project: Path) -> None:
    write(project, {"app/__init__.py": "", "app/work.py": GOOD})
    assert resolve(chain("app.work:handle")) == []


def test_missing_module_and_attribute(project: Path) -> None:
    write(project, {"work.py": GOOD})
    diags = resolve(chain("wrok:handle", "work:hnadle"))
    assert codes_of(diags) == ["MESH301", "MESH301"]
    assert "No module named 'wrok'" in diags[0].message
    assert "check the spelling of `wrok`" in diags[0].help
    assert "has no attribute `hnadle`" in diags[1].message
    assert diags[1].help == "functions in `work`: `handle`"


def test_position_is_the_handler_value(project: Path) -> None:
    text = chain("nowhere:handle")
    (diag,) = resolve(text)
    line = text.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1 :].startswith('"nowhere:handle"')


def test_import_errors_of_every_kind_are_reported(project: Path) -> None:
    write(
        project,
        {
            "exits.py": "import sys\nsys.exit(4)\n",
            "exits_none.py": "raise SystemExit\n",
            "raises.py": "x = 1\nraise ValueError('no config')\n",
            "syntax.py": "def broken(:\n",
            "base.py": "class Odd(BaseException):\n    pass\nraise Odd('odd')\n",
            "getattr_raises.py": "def __getattr__(name):\n    raise RuntimeError('lazy ' + name)\n",
        },
    )
    handlers = ("exits:h", "exits_none:h", "raises:h", "syntax:h", "base:h", "getattr_raises:h")
    diags = resolve(chain(*handlers))
    assert codes_of(diags) == ["MESH301"] * 6
    messages = [d.message for d in diags]
    assert "SystemExit: exit status 4" in messages[0]
    assert "SystemExit: exit status None" in messages[1]
    assert "ValueError: no config" in messages[2]
    assert "SyntaxError" in messages[3]
    assert "Odd: odd" in messages[4]
    assert "RuntimeError: lazy h" in messages[5]
    raised = diags[2].related[0]
    assert raised.span.file.endswith("raises.py") and raised.span.line == 2
    syntax = diags[3].related[0]
    assert syntax.span.file.endswith("syntax.py") and syntax.span.line == 1


def test_keyboard_interrupt_is_not_swallowed(project: Path) -> None:
    write(project, {"interrupt.py": "raise KeyboardInterrupt\n"})
    with pytest.raises(KeyboardInterrupt):
        resolve(chain("interrupt:handle"))


def test_output_on_import_goes_to_stderr(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, {"chatty.py": "print('hello from import')\n" + GOOD})
    assert resolve(chain("chatty:handle")) == []
    out, err = capsys.readouterr()
    assert out == ""
    assert "hello from import" in err


def test_without_resolve_nothing_is_imported(project: Path) -> None:
    marker = project / "imported.txt"
    write(project, {"marks.py": f"open({str(marker)!r}, 'w').close()\n" + GOOD})
    assert analyze_text(chain("marks:handle")).diagnostics == []
    assert not marker.exists()
    assert resolve(chain("marks:handle")) == []
    assert marker.exists()


def test_builtins_and_missing_handlers_are_not_imported(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr("meshc.checks.handlers.importlib.import_module", refuse)
    text = LANES.replace("HANDLER", "llm")
    text = text.replace('writes: ["@fam.input"]}', 'writes: ["@fam.input"], handler: fanout}')
    text = text.replace("join: {on: [id]}}", "join: {on: [id]}, handler: merge}")
    assert "handler: fanout" in text and "handler: merge" in text
    assert resolve(text) == []


def test_sys_path_and_modules_are_restored(project: Path) -> None:
    write(project, {"restored_pkg/__init__.py": "", "restored_pkg/work.py": GOOD})
    path_before = list(sys.path)
    assert resolve(chain("restored_pkg.work:handle")) == []
    assert sys.path == path_before
    assert "restored_pkg" not in sys.modules and "restored_pkg.work" not in sys.modules


def test_each_validation_sees_its_own_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same module name in two projects: the second run must not reuse the first."""
    first, second = tmp_path / "one", tmp_path / "two"
    write(first, {"same_name.py": GOOD})
    write(second, {"same_name.py": "def handle(payload):\n    return payload\n"})
    monkeypatch.chdir(first)
    assert resolve(chain("same_name:handle")) == []
    monkeypatch.chdir(second)
    assert codes_of(resolve(chain("same_name:handle"))) == ["MESH302"]


# ----------------------------------------------------------------------------- MESH302


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (GOOD, True),
        ("async def handle(payload, ctx):\n    return payload\n", True),
        ("def handle(payload, ctx, retries=3, *, log=None):\n    return payload\n", True),
        ("def handle(*args):\n    return args\n", True),
        ("def handle(payload, *rest):\n    return payload\n", True),
        ("class handle:\n    def __init__(self, payload, ctx):\n        pass\n", True),
        (
            "class _H:\n    def __call__(self, payload, ctx):\n        return payload\n"
            "handle = _H()\n",
            True,
        ),
        (
            "import functools\ndef _h(extra, payload, ctx):\n    return payload\n"
            "handle = functools.partial(_h, 1)\n",
            True,
        ),
        ("def handle(payload):\n    return payload\n", False),
        ("def handle():\n    return None\n", False),
        ("def handle(payload, ctx, extra):\n    return payload\n", False),
        ("def handle(payload, ctx, *, must):\n    return payload\n", False),
        ("def handle(*, payload, ctx):\n    return payload\n", False),
        ("handle = 'not a function'\n", False),
        ("handle = None\n", False),
    ],
)
def test_signatures(project: Path, body: str, ok: bool) -> None:
    write(project, {"sig.py": body})
    diags = resolve(chain("sig:handle"))
    assert codes_of(diags) == ([] if ok else ["MESH302"])
    if not ok:
        assert "handler(payload, ctx)" in diags[0].message


# ----------------------------------------------------------------------------- MESH303


@pytest.mark.parametrize(
    ("body", "reaches"),
    [
        ("import redis\n", "redis"),
        ("import redis.asyncio as r\n", "redis"),
        ("from redis.asyncio import Redis\n", "redis"),
        ("import json, valkey\n", "valkey"),
        ("def later():\n    import aioredis\n", "aioredis"),
        ("import importlib\nclient = lambda: importlib.import_module('redis')\n", "redis"),
        ("mod = lambda: __import__('valkey.asyncio')\n", "valkey"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import redis\n", None),
        ("import typing\nif typing.TYPE_CHECKING:\n    import redis\n", None),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n"
            "    import redis\n",
            "redis",
        ),
        ("import redisx\n", None),
        ("import json\n", None),
    ],
)
def test_redis_clients(project: Path, body: str, reaches: str | None) -> None:
    # The imports are written lazily where a missing client would break the import.
    write(project, {"talks.py": "def _():\n    pass\n" + _lazy(body) + GOOD})
    diags = resolve(chain("talks:handle"))
    if reaches is None:
        assert diags == []
        return
    (diag,) = diags
    assert diag.code == "MESH303"
    assert f"imports the Redis client `{reaches}`" in diag.message
    assert diag.related[0].span.file.endswith("talks.py")


def _lazy(body: str) -> str:
    """Wrap top-level imports of packages that may not be installed in a function."""
    if body.startswith(("import redis", "from redis", "import json, valkey")):
        return "def _imports():\n" + textwrap.indent(body, "    ")
    return body


def test_redis_reported_once_per_module(project: Path) -> None:
    body = "import redis\nfrom redis import asyncio\nimport redis.asyncio\n"
    write(project, {"twice.py": GOOD + "def _():\n" + textwrap.indent(body, "    ")})
    text = chain("twice:handle", "twice:handle")
    diags = resolve(text)
    assert codes_of(diags) == ["MESH303"]
    assert diags[0].span.line == line_of(text, "a0")  # the first agent bound to the module
    assert "`a0`, `a1`" in diags[0].message


def test_importing_another_agents_module(project: Path) -> None:
    write(
        project,
        {
            "lens/__init__.py": "",
            "lens/a.py": "from lens import b\n" + GOOD,
            "lens/b.py": GOOD,
            "lens/c.py": "from . import b as other\n" + GOOD,
            "lens/d.py": "import lens.b\n" + GOOD,
            "lens/e.py": "from .helpers import shared\n" + GOOD,
            "lens/helpers.py": "def shared():\n    pass\n",
            "lens/f.py": "from .b import handle as h\n" + GOOD,
        },
    )
    modules = ("lens.a", "lens.b", "lens.c", "lens.d", "lens.e", "lens.f")
    diags = resolve(chain(*(f"{m}:handle" for m in modules)))
    flagged = sorted(d.message.split("`")[1] for d in diags)
    assert codes_of(diags) == ["MESH303"] * 4
    assert flagged == ["lens.a", "lens.c", "lens.d", "lens.f"]
    for d in diags:
        assert "imports `lens.b`, the handler module of `a1`" in d.message
        assert "helper module that no agent is bound to" in d.help


def test_package_handler_module_with_relative_imports(project: Path) -> None:
    write(
        project,
        {
            "pkg/__init__.py": "from .sub import handle\n",
            "pkg/sub.py": GOOD,
            "other.py": GOOD,
        },
    )
    assert resolve(chain("pkg:handle", "pkg.sub:handle", "other:handle")) != []
    diags = resolve(chain("pkg:handle", "pkg.sub:handle"))
    assert codes_of(diags) == ["MESH303"]
    assert "`pkg` (of `a0`) imports `pkg.sub`" in diags[0].message


def test_agents_sharing_a_module_are_not_coupled(project: Path) -> None:
    write(project, {"shared.py": GOOD + "def other(payload, ctx):\n    return payload\n"})
    assert resolve(chain("shared:handle", "shared:other")) == []


# ----------------------------------------------------------------------------- lanes

LANES = """\
mesh: lanes
types:
  Task: {id: str}
  Merged: {id: str, parts: "dict[str, any]", missing: "list[str]"}
streams:
  tasks: {type: Task}
  merged: {type: Merged, terminal: true}
lanes:
  fam:
    names: [x, y, z]
    input: {stream: "fam.{lane}", type: Task}
    output: {stream: "fam.out.{lane}", type: Task}
    agent:
      handler: "HANDLER"
agents:
  ingest: {role: producer, writes: [tasks]}
  split: {role: coordinator, reads: [tasks], writes: ["@fam.input"]}
  combine: {role: aggregator, reads: ["@fam.output"], writes: [merged], join: {on: [id]}}
"""


def test_lane_family_shares_one_diagnostic(project: Path) -> None:
    (diag,) = resolve(LANES.replace("HANDLER", "missing_lanes:handle"))
    assert diag.code == "MESH301"
    assert diag.span.line == 14
    assert "agents `x`, `y`, `z`" in diag.message


def test_lane_family_templated_handlers(project: Path) -> None:
    write(project, {"lanes_mod.py": GOOD.replace("handle", "x") + GOOD.replace("handle", "y")})
    (diag,) = resolve(LANES.replace("HANDLER", "lanes_mod:{lane}"))
    assert diag.code == "MESH301"
    assert "`lanes_mod:z` of agent `z`" in diag.message
    assert diag.help == "functions in `lanes_mod`: `x`, `y`"


def test_hostile_objects_do_not_break_the_report(project: Path) -> None:
    """User exceptions whose __str__ raises, and non-modules in sys.modules."""
    write(
        project,
        {
            "bad_str.py": "class Odd(Exception):\n    def __str__(self):\n"
            "        raise ValueError('no')\nraise Odd()\n",
            "odd_module.py": "import sys\nsys.modules['odd_module'] = object()\n",
        },
    )
    diags = resolve(chain("bad_str:handle", "odd_module:handle"))
    assert codes_of(diags) == ["MESH301", "MESH301"]
    assert "(Odd)" in diags[0].message
    assert "odd_module" not in sys.modules
