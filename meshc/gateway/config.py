"""The gateway's settings, checked when they are built.

Every setting that can be wrong (a token file that does not exist, a weak token, a
webhook URL that is not http(s), a missing signing secret) fails here, before the
server listens, with a message that says what to change; the command turns it into
exit code 2. Secrets are kept as bytes and never printed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from meshc.runtime.errors import ConfigError
from meshc.runtime.spec import MeshSpec

TOKENS_ENV = "MESHC_SERVE_TOKENS"
SECRET_ENV = "MESHC_WEBHOOK_SECRET"
MIN_SECRET = 16
MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class GatewayConfigError(ConfigError):
    """Raised when a setting of ``meshc serve`` is missing or unusable."""


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one caller from exhausting the gateway.

    ``max_waits`` counts long-polls held open, ``max_streams`` event streams (each
    holds a server connection of its own while it blocks, a long-poll holds none).
    """

    max_body: int = 1_048_576
    max_wait: float = 60.0
    max_waits: int = 2_000
    max_streams: int = 100


@dataclass(frozen=True)
class Webhooks:
    """Where results are pushed and how: the global URL, the prefixes a per-task URL
    must start with, the signing secret, and the retry schedule."""

    secret: bytes
    url: str | None = None
    allow: tuple[str, ...] = ()
    attempts: int = 8
    backoff: float = 1.0
    timeout: float = 10.0

    def allows(self, url: str) -> bool:
        return any(url.startswith(prefix) for prefix in self.allow)


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens as SHA-256 digests: comparing digests of equal length in
    constant time says nothing about a token's length or its first bytes."""

    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, tokens: list[str]) -> Tokens:
        return cls(tuple(hashlib.sha256(t.encode()).digest() for t in tokens))

    def accepts(self, token: str) -> bool:
        probe = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found = False
        for digest in self.digests:  # no early exit: every token costs the same
            found |= hmac.compare_digest(probe, digest)
        return found


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the app needs; ``tokens`` is None with ``--no-auth``."""

    mesh: MeshSpec
    url: str
    tokens: Tokens | None
    limits: Limits = field(default_factory=Limits)
    webhooks: Webhooks | None = None
    keep: float = 86_400.0  # how long the gateway remembers a task it submitted


def load_tokens(path: str | None, env: Mapping[str, str]) -> Tokens:
    """Tokens from ``--tokens PATH`` (one per line, ``#`` comments) or ``MESHC_SERVE_TOKENS``
    (separated by commas or spaces); each at least 16 characters."""
    if path is not None:
        text = _read(path, "--tokens")
        found = [(f"{path}:{n}", line.strip()) for n, line in enumerate(text.splitlines(), 1)]
        found = [(where, t) for where, t in found if t and not t.startswith("#")]
    elif env.get(TOKENS_ENV, "").strip():
        words = re.split(r"[\s,]+", env[TOKENS_ENV].strip())
        found = [(f"{TOKENS_ENV} item {n}", t) for n, t in enumerate(words, 1) if t]
    else:
        raise GatewayConfigError(
            f"no tokens: give --tokens PATH (one per line) or set {TOKENS_ENV}, "
            "or --no-auth to serve without authentication (local use only)"
        )
    if not found:
        raise GatewayConfigError(f"{path or TOKENS_ENV} holds no token")
    for where, token in found:
        if len(token) < MIN_SECRET:
            raise GatewayConfigError(
                f"{where}: a token must be at least {MIN_SECRET} characters; "
                f"make one with {MAKE_ONE}"
            )
    return Tokens.of([t for _, t in found])


def load_secret(path: str | None, env: Mapping[str, str]) -> bytes:
    """The webhook signing secret from ``--webhook-secret-file`` or ``MESHC_WEBHOOK_SECRET``."""
    if path is not None:
        secret = _read(path, "--webhook-secret-file").strip()
        where = path
    else:
        secret, where = env.get(SECRET_ENV, "").strip(), SECRET_ENV
    if not secret:
        raise GatewayConfigError(
            f"webhooks are signed: give --webhook-secret-file PATH or set {SECRET_ENV}"
        )
    if len(secret) < MIN_SECRET:
        raise GatewayConfigError(
            f"{where}: the webhook secret must be at least {MIN_SECRET} characters; "
            f"make one with {MAKE_ONE}"
        )
    return secret.encode("utf-8")


def check_webhook_url(url: str, what: str) -> str:
    """An absolute http(s) URL with a host, else a message naming ``what``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayConfigError(f"{what} must be an http:// or https:// URL, not {url!r}")
    return url


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise GatewayConfigError(f"{option} {path}: cannot read it ({reason})") from None
