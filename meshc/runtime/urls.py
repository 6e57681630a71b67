"""Server URLs: which kind each is, and how to print one without its password.

Kept apart from ``connect`` (which builds clients, through ``cluster`` for cluster
URLs) so that ``cluster`` can use it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from meshc.runtime.errors import ConnectError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Target:
    """A parsed server URL: which kind of client it needs."""

    url: str
    cluster: bool


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print and log."""
    parts = urlsplit(url)
    userinfo, sep, hosts = parts.netloc.rpartition("@")  # hosts: one, or a cluster's list
    if not sep or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def parse_url(url: str) -> Target:
    """Check the scheme up front, so a typo fails here and not deep inside redis-py."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in SINGLE_SCHEMES:
        return Target(url=url, cluster=False)
    if scheme in CLUSTER_SCHEMES:
        return Target(url=url, cluster=True)
    allowed = ", ".join(f"{s}://" for s in SINGLE_SCHEMES + CLUSTER_SCHEMES)
    raise ConnectError(f"unsupported server URL {redact(url)!r}: use one of {allowed}")
