"""Webhook signatures: HMAC-SHA256 over the timestamp and the body.

The signed message is ``<timestamp>.<body>``: the body proves the result was not
changed, the timestamp (seconds since the epoch, also sent as ``X-Meshc-Timestamp``)
that it is fresh, so a captured request replayed later is refused by a receiver that
checks its age. :func:`verify` is what a Python receiver runs; docs/gateway.md shows
the same check in a few lines to copy.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE = "X-Meshc-Signature"
TIMESTAMP = "X-Meshc-Timestamp"
DELIVERY = "X-Meshc-Delivery"
ATTEMPT = "X-Meshc-Attempt"
TOLERANCE_S = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Meshc-Signature`` value: ``sha256=<hex digest>``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    tolerance: float = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours for this body and ``timestamp`` is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)
