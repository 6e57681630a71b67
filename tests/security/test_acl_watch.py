"""``meshc run --acl`` puts back what the server lost: its users, its scripts.

The attack here is the server's own forgetting (a restart without an ACL file empties
the users, any restart the script cache), played directly: users deleted, scripts
flushed. The watch must restore each, with the same passwords, and leave a server
that lost nothing alone. The whole story under a running mesh and a real restart is
in ``tests/e2e/test_e2e_server_restart.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from meshc.codegen.build import Built
from meshc.ops.acl import AgentUrls, admin_client, enable, worker_scripts
from meshc.ops.acl_watch import AclWatch


def _watch(url: str, built: Built, secrets: Path, users: AgentUrls) -> AclWatch:
    return AclWatch(url, built.package, secrets, users.operator_url, list(users.agents.values()))


@pytest.mark.parametrize("lost", ["guarded.operator", "guarded.echo"])
def test_a_lost_user_is_applied_again_with_its_password(
    own_server: str, guarded: tuple[Path, Built], tmp_path: Path, lost: str
) -> None:
    secrets = tmp_path / "secrets.json"
    users = enable(own_server, guarded[1].package, secrets)
    watch = _watch(own_server, guarded[1], secrets, users)
    watch.check()
    assert (watch.reapplied, watch.reloaded) == (0, 0)  # nothing lost: nothing done
    admin = admin_client(own_server, secrets)
    try:
        admin.acl_deluser(lost)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(
                users.for_agent("echo") if "echo" in lost else users.operator_url
            ).ping()
        watch.check()
        assert watch.reapplied == 1
        for url in [users.operator_url, *users.agents.values()]:  # the same passwords
            with redis.Redis.from_url(url) as client:
                assert client.ping()
    finally:
        admin.close()


def test_lost_scripts_are_loaded_again(
    own_server: str, guarded: tuple[Path, Built], tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.json"
    users = enable(own_server, guarded[1].package, secrets)
    admin = admin_client(own_server, secrets)
    try:
        admin.script_flush()
        shas = [s.sha for s in worker_scripts()]
        assert admin.script_exists(*shas) == [False] * len(shas)
        watch = _watch(own_server, guarded[1], secrets, users)
        watch.check()
        assert (watch.reapplied, watch.reloaded) == (0, 1)
        assert admin.script_exists(*shas) == [True] * len(shas)
    finally:
        admin.close()
