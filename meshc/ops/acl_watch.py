"""Keep a mesh's server users and scripts in place while ``meshc run --acl`` runs.

A server keeps its ACL users only when it has an ACL file (the embedded server has
one); any other server comes back from a restart without them, and every server
comes back with an empty script cache. The workers then cannot log in (WRONGPASS) or
run a script (NOSCRIPT: they may not load one) and wait, with backoff. This watch,
beside the supervisor, is what ends that wait: every few seconds it

- logs in as the operator, then as each agent on the same connection (``AUTH``);
  refused (the users are gone, or were changed), it applies the compiled users again
  with the admin connection and the same passwords
  (:func:`meshc.ops.acl.enable`, which also gives ``default`` its password back and
  loads the scripts);
- asks which of the project's scripts the server lacks (``SCRIPT EXISTS``) and loads
  them as the operator.

A server that does not answer is noted once, not at every check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from meshc.ops.acl import AgentUrls, enable, load_scripts
from meshc.runtime.connect import ServerUnreachable, connect, redact
from meshc.runtime.periodic import Periodic

EVERY = 2.0  # seconds between checks
log = logging.getLogger("meshc.run")


class AclWatch(Periodic):
    """The check of the module docstring, once (:meth:`check`) or on a thread of its
    own every ``every`` seconds (:meth:`start` … :meth:`stop`)."""

    def __init__(
        self,
        url: str,
        package: str,
        secret_file: Path,
        operator_url: str,
        agent_urls: Sequence[str] = (),
        every: float = EVERY,
    ) -> None:
        super().__init__("meshc-acl-watch", log)
        self.url, self.package, self.secret_file = url, package, secret_file
        self.operator_url = operator_url
        self.logins = [_login(u) for u in agent_urls]
        self.every = every
        self.reapplied = 0  # how many times the users were applied again
        self.reloaded = 0  # how many times scripts were loaded again

    def tick(self) -> None:
        self.check()

    def failed(self, err: BaseException) -> str:
        return (f"cannot check the mesh's users on {redact(self.url)} (checking again every "
                f"{self.every:g} s, quietly): {err}")  # fmt: skip

    def recovered(self) -> str:
        return (
            f"the server at {redact(self.url)} answers again; the mesh's users and "
            "scripts are in place"
        )

    def check(self) -> None:
        """Apply the users again if one cannot log in; load missing scripts."""
        if not self._users_log_in():
            enable(self.url, self.package, self.secret_file)  # loads the scripts too
            self.reapplied += 1
            log.warning(
                "the server at %s had lost the mesh's users (restarted without an ACL "
                "file?); applied them again with the same passwords", redact(self.url),
            )  # fmt: skip
            return
        loaded = load_scripts(self.operator_url)
        if loaded:
            self.reloaded += 1
            log.warning(
                "the server at %s had lost %d of the mesh's scripts (restarted, or SCRIPT "
                "FLUSH); loaded them again", redact(self.url), len(loaded),
            )  # fmt: skip

    def _users_log_in(self) -> bool:
        """True when the operator's password and every agent's are accepted; a server
        that does not answer raises (an outage, not lost users)."""
        try:
            client = connect(self.operator_url)
        except ServerUnreachable as err:
            if isinstance(err.__cause__, redis.AuthenticationError):
                return False
            raise
        try:
            for user, password in self.logins:
                client.execute_command("AUTH", user, password)  # type: ignore[no-untyped-call]
        except redis.AuthenticationError:
            return False
        finally:
            client.close()
        return True


def _login(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.username is None or parts.password is None:  # a unix socket URL's query
        query = parse_qs(parts.query)
        return query["username"][0], query["password"][0]
    return unquote(parts.username), unquote(parts.password)


def start_watch(url: str, package: str, secret_file: Path, users: AgentUrls) -> AclWatch:
    """Start watching ``users``; stop it with :meth:`AclWatch.stop` when the mesh stops."""
    agents = list(users.agents.values())
    return AclWatch(url, package, secret_file, users.operator_url, agents).start()
