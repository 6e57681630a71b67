"""Per-agent ACLs enforced by the server itself (Valkey 9 and Redis 7.0).

The compiled rules are applied with real users; each negative case must be refused
with NOPERM, and the mesh must still run end to end with every agent logged in as
its own user (the commit and join scripts included).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from meshc.codegen.build import build_cached
from meshc.ops.acl import (
    apply_users,
    load_passwords,
    load_scripts,
    split_rule,
    with_credentials,
)
from meshc.ops.client import MeshClient
from meshc.runtime.process.launch import run_mesh

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("acl-build")
    result = build_cached(str(ROOT / "meshes" / "doc_review.yaml"), folder)
    sys.path.insert(0, str(result.root))
    yield result
    sys.path.remove(str(result.root))


@pytest.fixture()
def users(valkey_url: str, built: Any, tmp_path: Path) -> dict[str, str]:
    """Apply the compiled rules; agent name → URL with that agent's credentials."""
    acl = importlib.import_module(f"{built.package}.acl")
    rules = {acl.USERS[a]: rule for a, rule in acl.RULES.items()}
    rules[acl.OPERATOR_USER] = acl.OPERATOR_RULE
    passwords = load_passwords(sorted(rules), tmp_path / "secrets.json")
    admin = redis.Redis.from_url(valkey_url)
    apply_users(admin, rules, passwords)
    admin.close()
    urls = {a: with_credentials(valkey_url, u, passwords[u]) for a, u in acl.USERS.items()}
    urls["operator"] = with_credentials(valkey_url, acl.OPERATOR_USER, passwords[acl.OPERATOR_USER])
    load_scripts(urls["operator"])  # as `meshc run --acl` does: agents may not load them
    yield urls
    admin = redis.Redis.from_url(valkey_url)
    for user in rules:
        admin.execute_command("ACL", "DELUSER", user)
    admin.close()


def refused(url: str, *command: Any) -> str:
    client = redis.Redis.from_url(url)
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError as err:
        return str(err)
    except redis.ResponseError as err:
        text = str(err)
        # Valkey says "ACL failure in script"; Redis 7.0 "can't access ... keys".
        if not any(m in text for m in ("ACL failure", "permission", "can't access")):
            pytest.fail(f"{command} failed with {err}, not a permission refusal")
        return text
    finally:
        client.close()
    pytest.fail(f"{command} was allowed")


def test_split_rule_keeps_selectors_whole() -> None:
    assert split_rule("-@all +xack %RW~a (+xadd %W~b %W~c) (+get %RW~k:*)") == [
        "-@all",
        "+xack",
        "%RW~a",
        "(+xadd %W~b %W~c)",
        "(+get %RW~k:*)",
    ]


def test_secret_file_is_private_and_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.json"
    first = load_passwords(["m.a", "m.b"], path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_passwords(["m.a", "m.b"], path) == first
    monkeypatch.setenv("MESHC_ACL_PASSWORD_M_A", "from-env")
    assert load_passwords(["m.a"], path)["m.a"] == "from-env"


def test_agents_are_refused_what_they_do_not_own(users: dict[str, str], valkey_url: str) -> None:
    grammar = users["grammar"]
    setup = redis.Redis.from_url(valkey_url)
    setup.xgroup_create("doc.review.grammar", "grammar", id="0", mkstream=True)
    setup.xadd("doc.suggestions.clarity", {"data": "{}"})
    setup.close()
    seen = {
        "write another agent's stream": refused(
            grammar, "XADD", "doc.suggestions.clarity", "*", "data", "{}"
        ),
        "write its own input": refused(grammar, "XADD", "doc.review.grammar", "*", "data", "{}"),
        "read a stream it does not own": refused(
            grammar,
            "XREADGROUP",
            "GROUP",
            "grammar",
            "c",
            "STREAMS",
            "doc.suggestions.clarity",
            ">",
        ),
        "trim": refused(grammar, "XTRIM", "doc.review.grammar", "MAXLEN", "0"),
        "destroy a group": refused(grammar, "XGROUP", "DESTROY", "doc.review.grammar", "grammar"),
        "touch any other key": refused(grammar, "SET", "doc_review:clarity:x", "1"),
        "write its input inside a script": refused(
            grammar,
            "EVAL",
            "return redis.call('XADD', KEYS[1], '*', 'data', '{}')",
            "1",
            "doc.review.grammar",
        ),
        "producer reads the intake": refused(
            users["ingestion"], "XRANGE", "doc.review.summary", "-", "+"
        ),
    }
    for what, message in seen.items():
        assert message, what
    allowed = redis.Redis.from_url(grammar)
    assert allowed.xadd("doc.suggestions.grammar", {"data": "{}"})
    allowed.close()


def test_mesh_runs_end_to_end_with_acls(
    users: dict[str, str], valkey_url: str, built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    admin = redis.Redis.from_url(valkey_url)
    admin.execute_command("ACL", "LOG", "RESET")
    admin.close()
    spec = built.load_spec()
    stop = threading.Event()
    env = {"PYTHONPATH": f"{built.root}:{ROOT}"}
    runner = threading.Thread(
        target=run_mesh,
        args=(spec, built.package, valkey_url),
        kwargs={"url_for": users.__getitem__, "extra_env": env, "stop": stop},
        daemon=True,
    )
    runner.start()
    try:
        with MeshClient(spec, users["operator"]) as client:
            tasks = [
                {"doc_id": f"d{i}", "chunk_id": 0, "text": "Their is a  problem. We recieve it!!"}
                for i in range(20)
            ]
            traces = [s.trace for s in client.submit_many(tasks)]
            results = client.wait_many(traces, timeout=60)
        assert len(results) == 20
        for result in results.values():
            assert sorted(result.data["lenses"]) == ["clarity", "grammar", "structure", "tone"]
    finally:
        stop.set()
        runner.join(timeout=60)
    admin = redis.Redis.from_url(valkey_url)
    denied = admin.execute_command("ACL", "LOG")
    admin.close()
    assert denied == [], denied
