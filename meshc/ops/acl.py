"""Apply a compiled mesh's ACL rules: one server user per agent, plus an operator.

The rules come from the generated package's ``acl.py`` (no secrets there). Passwords
come from the environment (``MESHC_ACL_PASSWORD_<USER>``, the user name upper-cased
with every other character than letters and digits turned into ``_``) or from a
secret file (JSON ``{user: password}``, created with random passwords and mode 0600
when absent). Workers receive their credentials on stdin, never in their environment
or argv.

Agents call the project's scripts by SHA only (their rules have no ``+eval``), so
the operator loads the scripts (``SCRIPT LOAD``) whenever it applies the users.

Per-agent users protect nothing while the server's ``default`` user logs anyone in
without a password as a superuser, so a ``default`` without a password gets one (kept
in the secret file as ``default``), and the users are saved (``ACL SAVE``) when the
server has an ACL file, as the embedded server does, so that a restart keeps them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from meshc.runtime.connect import MeshOpsError, connect
from meshc.runtime.process.server_files import write_private
from meshc.runtime.scripts import Script, registered

ENV_PREFIX = "MESHC_ACL_PASSWORD_"


class AclError(MeshOpsError):
    """Raised when rules cannot be applied (no ACL support, bad rule, no admin right)."""


def env_name(user: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def split_rule(rule: str) -> list[str]:
    """ACL SETUSER arguments: words, with each ``( … )`` selector kept as one argument."""
    args: list[str] = []
    depth, current = 0, ""
    for ch in rule:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == " " and depth == 0:
            if current:
                args.append(current)
            current = ""
        else:
            current += ch
    if current:
        args.append(current)
    return args


def read_secrets(secret_file: Path) -> dict[str, str]:
    """The secret file's ``{user: password}``; empty when there is none yet."""
    if not secret_file.exists():
        return {}
    try:
        stored = json.loads(secret_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AclError(f"cannot read the secret file {secret_file}: {err}") from err
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise AclError(f"the secret file {secret_file} is not a JSON object of user: password")
    return stored


def load_passwords(users: list[str], secret_file: Path) -> dict[str, str]:
    """A password per user: the environment first, then the secret file (grown as needed)."""
    stored = read_secrets(secret_file)
    out, grown = {}, False
    for user in users:
        from_env = os.environ.get(env_name(user))
        if from_env:
            out[user] = from_env
            continue
        if user not in stored:
            stored[user] = secrets.token_urlsafe(24)
            grown = True
        out[user] = stored[user]
    if grown:
        _write_secret(secret_file, stored)
    return out


def _write_secret(path: Path, data: Mapping[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, json.dumps(dict(sorted(data.items())), indent=2))


_UNKNOWN = re.compile(r"modifier '\+([a-z|_-]+)': Unknown command")


def apply_users(
    client: redis.Redis, rules: Mapping[str, str], passwords: Mapping[str, str]
) -> list[str]:
    """``ACL SETUSER <user> reset on ><password> <rules…>`` for each user.

    A command that this server version does not know (``CLIENT SETINFO`` before Redis
    7.2) is dropped from the rules rather than failing them; the names dropped are
    returned. Anything else the server refuses raises AclError.
    """
    dropped: list[str] = []
    for user, rule in rules.items():
        args = split_rule(rule)
        while True:
            try:
                client.execute_command(  # type: ignore[no-untyped-call]
                    "ACL", "SETUSER", user, "reset", "on", f">{passwords[user]}", *args
                )
                break
            except redis.ResponseError as err:
                unknown = _UNKNOWN.search(str(err))
                if unknown is None or f"+{unknown.group(1)}" not in args:
                    raise AclError(f"the server refused the rules of {user}: {err}") from err
                args.remove(f"+{unknown.group(1)}")
                dropped.append(unknown.group(1))
    return sorted(set(dropped))


def with_credentials(url: str, user: str, password: str) -> str:
    """The URL with this user's credentials (kept out of argv and logs by the caller)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.scheme == "unix":
        query = parts.query + ("&" if parts.query else "")
        query += f"username={quote(user, safe='')}&password={quote(password, safe='')}"
        return urlunsplit((parts.scheme, "", parts.path, query, parts.fragment))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


DEFAULT_SECRET_FILE = Path(".meshc") / "acl-secrets.json"
DEFAULT_USER = "default"


def enable(url: str, package: str, secret_file: Path = DEFAULT_SECRET_FILE) -> AgentUrls:
    """Apply a compiled package's rules on the server at ``url`` (an admin connection),
    give a password-less ``default`` user a password and save the users.

    Returns each agent's URL with its own credentials, and the operator's.
    """
    import importlib

    acl = importlib.import_module(f"{package}.acl")
    rules = {acl.USERS[agent]: rule for agent, rule in acl.RULES.items()}
    rules[acl.OPERATOR_USER] = acl.OPERATOR_RULE
    client = admin_client(url, secret_file)
    try:
        locking = default_is_open(client)
        users = sorted(rules) + ([DEFAULT_USER] if locking else [])
        passwords = load_passwords(users, secret_file)
        dropped = apply_users(client, rules, passwords)
        if locking:  # last: this connection stays logged in as it was
            client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", DEFAULT_USER, "resetpass", f">{passwords[DEFAULT_USER]}"
            )
        saved = save_users(client)
    finally:
        client.close()
    agents = {
        agent: with_credentials(url, user, passwords[user]) for agent, user in acl.USERS.items()
    }
    operator = with_credentials(url, acl.OPERATOR_USER, passwords[acl.OPERATOR_USER])
    load_scripts(operator)  # agents may only call them by SHA
    return AgentUrls(agents, acl.OPERATOR_USER, operator, dropped, locking, saved)


def worker_scripts() -> list[Script]:
    """Every script a worker may call, the LLM agents' included."""
    import meshc.runtime.llm.store  # noqa: F401 - makes (registers) the LLM agents' scripts

    return registered()


def load_scripts(operator_url: str) -> list[str]:
    """Load (SCRIPT LOAD, as the operator) every worker script the server lacks; the
    SHAs loaded. Agents call scripts by SHA only and may not load them, so after a
    restart or a ``SCRIPT FLUSH`` they wait until this has run."""
    everything = worker_scripts()
    client = connect(operator_url)
    try:
        present = client.script_exists(*[s.sha for s in everything])
        missing = [s for s, there in zip(everything, present, strict=True) if not there]
        for script in missing:
            client.script_load(script.source)
    finally:
        client.close()
    return [s.sha for s in missing]


def admin_url(url: str, secret_file: Path) -> str:
    """``url``, or, when it carries no credentials and an earlier ``enable`` gave
    ``default`` a password, ``url`` logged in as ``default`` with it: what the one who
    ran ``--acl`` with that URL may still do once ``default`` is locked."""
    stored = read_secrets(secret_file).get(DEFAULT_USER)
    parts = urlsplit(url)
    anonymous = not (parts.username or parts.password or "password=" in parts.query)
    return with_credentials(url, DEFAULT_USER, stored) if anonymous and stored else url


def admin_client(url: str, secret_file: Path) -> redis.Redis:
    """A connection for ``url``; a URL without credentials logs in as ``default`` with
    the password an earlier ``enable`` gave it, if the secret file has one."""
    stored = read_secrets(secret_file).get(DEFAULT_USER)
    parts = urlsplit(url)
    anonymous = not (parts.username or parts.password or "password=" in parts.query)
    if anonymous and stored:
        return connect(url, password=stored)
    return connect(url)


def default_is_open(client: redis.Redis) -> bool:
    """Does the ``default`` user let anyone in without a password?"""
    flags = (client.acl_getuser(DEFAULT_USER) or {}).get("flags")
    names = {f.decode() if isinstance(f, bytes) else str(f) for f in _listed(flags)}
    return "on" in names and "nopass" in names


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def save_users(client: redis.Redis) -> bool:
    """``ACL SAVE`` when the server keeps its users in an ACL file; False when it has
    none (its users then last until it restarts)."""
    try:
        configured = client.config_get("aclfile").get("aclfile")
    except redis.ResponseError:  # no CONFIG right: a restricted admin user
        return False
    if not configured:
        return False
    try:
        client.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
    except redis.ResponseError as err:
        raise AclError(f"the server could not save its users to {configured!r}: {err}") from err
    return True


@dataclass(frozen=True)
class AgentUrls:
    """What ``enable`` set up: per-agent URLs (secret), the operator's user and URL,
    commands dropped from the rules, whether ``default`` was given a password, and
    whether the server saved the users."""

    agents: dict[str, str]
    operator_user: str
    operator_url: str
    dropped: list[str]
    locked_default: bool = False
    saved: bool = False

    def for_agent(self, agent: str) -> str:
        return self.agents[agent]
