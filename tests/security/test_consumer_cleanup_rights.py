"""Removing stale consumers is the operator's work, not an agent's.

An agent that could ``XGROUP DELCONSUMER`` could delete another replica's consumer
and, with it, the entries that replica holds (they would never be delivered again).
So the agents' users may not, and the operator's user, which ``meshc run`` removes
stale consumers with, may, with the server refusing it nothing (``ACL LOG`` empty).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from meshc.codegen.build import Built
from meshc.ops.acl import admin_client, enable
from meshc.runtime.process import consumers


def test_only_the_operator_removes_consumers(
    own_server: str,
    guarded: tuple[Path, Built],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = tmp_path / "secrets.json"
    users = enable(own_server, guarded[1].package, secrets)
    admin = admin_client(own_server, secrets)
    admin.xgroup_create("g.in", "echo", id="0", mkstream=True)
    admin.xgroup_createconsumer("g.in", "echo", "gone-host-echo-0")
    admin.acl_log_reset()
    echo = redis.Redis.from_url(users.for_agent("echo"))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            echo.xgroup_delconsumer("g.in", "echo", "gone-host-echo-0")
        admin.acl_log_reset()
        monkeypatch.setattr(consumers, "TIMES_VISIBILITY", 0)  # the bound is the floor alone
        time.sleep(0.2)  # idle at least this long
        removed = consumers.reap(guarded[1].load_spec(), users.operator_url, floor=0.1)
        assert removed == [consumers.Removed("g.in", "echo", "gone-host-echo-0")]
        assert admin.xinfo_consumers("g.in", "echo") == []
        assert admin.acl_log() == []
    finally:
        echo.close()
        admin.close()
