"""The dashboard's session cookie and the CSRF token derived from it.

A session is ``ISSUED.NONCE.MAC``: issued-at Unix seconds, a random nonce, and an
HMAC-SHA256 over both keyed by the secret key *and* the API token, so changing
``SALESCYCLE_API_TOKEN`` (or the secret key) ends every session. The CSRF token is a
second HMAC over the session value, so it needs no storage and a form posted from
another site (which cannot read the cookie) cannot carry it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

SESSION_COOKIE = "salescycle_session"
SESSION_LIFETIME = dt.timedelta(hours=12)


class SessionSigner:
    """Issues and verifies dashboard sessions and their CSRF tokens."""

    def __init__(self, secret_key: bytes, api_token: str) -> None:
        material = secret_key + b"\x00dashboard-session\x00" + api_token.encode()
        self._key = hashlib.sha256(material).digest()
        self._token = api_token.encode()

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the configured API token (constant time)."""
        return hmac.compare_digest(given.strip().encode(), self._token)

    def issue(self, now: dt.datetime) -> str:
        """A new session value, valid for :data:`SESSION_LIFETIME` from ``now``."""
        body = f"{int(now.timestamp())}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac('session', body)}"

    def valid(self, session: str | None, now: dt.datetime) -> bool:
        """Whether ``session`` was issued by us and has not expired."""
        if not session:
            return False
        body, dot, mac = session.rpartition(".")
        issued, _, nonce = body.partition(".")
        if not dot or not issued.isdigit() or not nonce:
            return False
        if not hmac.compare_digest(self._mac("session", body), mac):
            return False
        age = now.timestamp() - int(issued)
        return -60 <= age <= SESSION_LIFETIME.total_seconds()

    def csrf(self, session: str) -> str:
        """The CSRF token every form of this session carries."""
        return self._mac("csrf", session)

    def csrf_matches(self, session: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf(session), str(given))

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
