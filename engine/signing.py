"""Signed outbound webhooks: one scheme for every request the engine POSTs to others.

A request carries ``X-Salescycle-Timestamp`` (Unix seconds) and
``X-Salescycle-Signature: sha256=HEX``, the HMAC-SHA256 of ``TIMESTAMP.BODY`` with a
shared secret, so the receiver can tell the request came from us, unaltered and fresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

TIMESTAMP_HEADER = "X-Salescycle-Timestamp"
SIGNATURE_HEADER = "X-Salescycle-Signature"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signed_headers(secret: bytes, body: bytes, now: dt.datetime) -> dict[str, str]:
    """The headers of a signed JSON request of ``body`` sent at ``now``."""
    timestamp = str(int(now.timestamp()))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)
