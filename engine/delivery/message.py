"""The provider-neutral message every transport receives."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    """An email address with an optional display name."""

    email: str
    name: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    """One email, exactly as it is to be sent, whatever the transport.

    ``headers`` are the extra headers (threading, List-Unsubscribe); ``custom_args``
    are our ids, which SendGrid hands back on every event about the message.
    """

    message_id: str
    rfc_message_id: str
    date: dt.datetime
    sender: Address
    to: Address
    reply_to: Address
    subject: str
    text: str
    html: str | None
    headers: tuple[tuple[str, str], ...]
    custom_args: Mapping[str, str]
    # (url, tag) of each tracked link, in the order of its click tokens; not sent
    tracked_links: tuple[tuple[str, str | None], ...] = ()

    def header(self, name: str) -> str | None:
        """The value of one extra header (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


def new_message_id() -> str:
    """A fresh message id: 16 lower-case base32 characters (80 random bits)."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
