"""Signed tokens in reply addresses, tracking links and unsubscribe links.

A token is ``PAYLOAD.SIGNATURE``: the payload names a message (and, for a click,
which of its links), the signature is a keyed BLAKE2b MAC (a MAC by design, one
C call, a third of HMAC-SHA256's cost; a message carries five or more tokens) over
the purpose and the payload, 80 bits written in hex. Lower case matters: the reply
token travels in an email local part (``reply+TOKEN@...``), which some mail systems
lower-case, so itsdangerous' case-sensitive base64 would not survive.
A token signed for one purpose (say ``open``) is worthless for another (``unsub``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum

_PAYLOAD = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_SIGNATURE_BYTES = 10


class TokenPurpose(StrEnum):
    """What a token may be used for; each purpose signs differently."""

    REPLY = "reply"
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsub"


class TokenSigner:
    """Signs and verifies tokens with the workspace's secret key."""

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        # BLAKE2b takes keys of up to 64 bytes; a longer secret is hashed down to one.
        self._key = secret_key if len(secret_key) <= 64 else hashlib.sha512(secret_key).digest()

    def sign(self, purpose: TokenPurpose, payload: str) -> str:
        """``payload.signature`` for ``payload`` (lower-case letters, digits, dashes)."""
        if not _PAYLOAD.fullmatch(payload):
            raise ValueError(f"token payload {payload!r} must be lower-case letters, digits, '-'")
        return f"{payload}.{self._signature(purpose, payload)}"

    def verify(self, purpose: TokenPurpose, token: str) -> str | None:
        """The payload of a genuine token for ``purpose``; ``None`` for anything else."""
        payload, dot, signature = token.lower().rpartition(".")
        if not dot or not _PAYLOAD.fullmatch(payload) or not signature.isascii():
            return None
        expected = self._signature(purpose, payload)
        return payload if hmac.compare_digest(expected, signature) else None

    def _signature(self, purpose: TokenPurpose, payload: str) -> str:
        message = f"{purpose}:{payload}".encode()
        return hashlib.blake2b(message, key=self._key, digest_size=_SIGNATURE_BYTES).hexdigest()


def click_payload(message_id: str, link_index: int) -> str:
    """The payload of a click token: the message and the position of the link in it."""
    return f"{message_id}-{link_index}"


def split_click_payload(payload: str) -> tuple[str, int] | None:
    """``(message_id, link_index)`` from a verified click payload."""
    message_id, dash, index = payload.rpartition("-")
    if not dash or not index.isdigit():
        return None
    return message_id, int(index)
