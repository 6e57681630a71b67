"""A stream belongs to one mesh on a server: ``meshc run`` and ``meshc submit`` of
another mesh that declares it are refused, with both meshes and the streams named."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from e2e_kit import build, cli, write_mesh
from meshc.runtime import running

ALPHA = """\
    mesh: alpha
    version: 1
    types:
      Line: {text: str}
    streams:
      shared.in: {type: Line}
      alpha.out: {type: Line, terminal: true}
    agents:
      feed: {role: producer, writes: [shared.in]}
      echo:
        role: specialist
        reads: [shared.in]
        writes: [alpha.out]
        handler: alpha_handlers:echo
"""
HANDLERS = """\
    def echo(payload, ctx):
        return {"text": payload.text}
"""


def test_another_mesh_on_the_same_stream_is_refused(
    server: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(workdir))
    alpha = write_mesh(workdir, "alpha", ALPHA, HANDLERS)
    beta = write_mesh(workdir, "beta", ALPHA.replace("mesh: alpha", "mesh: beta"))
    spec = build(alpha)[1]
    client = redis.Redis.from_url(server)
    running.claim(client, spec, running.record_fields(spec, str(alpha)))
    beat = running.Heartbeat(client, "alpha")
    try:
        refused = cli("run", str(beta))
        assert refused.code == 1, refused.err
        assert "mesh `beta` declares streams of another mesh: mesh `alpha` owns `alpha.out`, " \
               "`shared.in` on this server and is running" in refused.err  # fmt: skip
        assert "--take-over" in refused.err and "meshc rollout" in refused.err
        task = '{"text": "hi"}'
        refused = cli("submit", str(beta), "shared.in", "--json", task)
        assert refused.code == 1 and "mesh `alpha` owns `alpha.out`, `shared.in`" in refused.err
        assert client.xlen("shared.in") == 0  # nothing was submitted
        assert cli("submit", str(alpha), "shared.in", "--json", task).code == 0
        assert client.xlen("shared.in") == 1
        changed = ALPHA.replace("Line: {text: str}", "Line: {text: str, lang: str}")
        newer = write_mesh(workdir, "alpha2", changed)
        refused = cli("run", str(newer))  # same mesh, a type its streams cannot take
        assert refused.code == 1 and "required field `lang` is missing" in refused.err
        assert "meshc rollout OLD NEW --apply" in refused.err
    finally:
        beat.stop()
        client.close()
