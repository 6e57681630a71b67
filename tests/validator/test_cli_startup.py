"""`meshc validate` imports what validating needs and nothing else.

The command line registers only the command being run, and the validator imports
networkx only to report a cycle: starting redis, asyncio and networkx took about
0.4 s before a 10,000-agent mesh could even be read.
"""

from __future__ import annotations

import subprocess
import sys

from corpus import FIXTURES, ROOT

PROBE = """
import sys
from meshc.cli import main
code = main(["validate", sys.argv[1]])
print(code, " ".join(m for m in ("redis", "networkx", "jinja2", "asyncio") if m in sys.modules))
"""


def probe(path: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, path], capture_output=True, text=True, cwd=ROOT, check=True
    )
    code, *loaded = done.stdout.splitlines()[-1].split()
    return int(code), set(loaded)


def test_a_valid_mesh_is_validated_without_the_runtime_or_networkx() -> None:
    assert probe(str(ROOT / "meshes" / "doc_review.yaml")) == (0, set())


def test_a_cycle_brings_in_networkx_to_report_it() -> None:
    cyclic = sorted(FIXTURES.glob("mesh101*.yaml"))[0]
    code, loaded = probe(str(cyclic))
    assert code == 1 and loaded == {"networkx"}
