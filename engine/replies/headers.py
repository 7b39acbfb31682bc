"""The headers of an inbound message that match it to ours, read without ever failing.

Raw header values are decoded here (encoded words, folded lines) rather than through
``policy.default``'s header objects: a malformed address or date must still leave the
rest of the message readable.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_FOLD = re.compile(r"\r?\n[ \t]+")


@dataclass(frozen=True)
class MessageHeaders:
    """Every header by lower-cased name (values unfolded), and the ones we match on."""

    all: dict[str, list[str]]
    sender: str | None
    to: tuple[str, ...]  # To and the envelope's recipients: our own addresses
    recipients: tuple[str, ...]  # To, Cc and the envelope's
    subject: str
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    sent_at: dt.datetime | None

    def first(self, name: str) -> str:
        """The first value of header ``name`` ("" when absent)."""
        values = self.all.get(name.lower())
        return values[0] if values else ""


def read_headers(message: Message, envelope_to: Sequence[str] = ()) -> MessageHeaders:
    """The headers of ``message``; ``envelope_to`` joins the recipients (reply tokens)."""
    found: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        found.setdefault(name.lower(), []).append(_FOLD.sub(" ", str(value)).strip())
    senders = _addresses(found.get("from", []))
    to = _addresses(found.get("to", [])) + [e.strip().lower() for e in envelope_to if e.strip()]
    recipients = [*to, *_addresses(found.get("cc", []))]
    in_reply_to = _MESSAGE_ID.findall(" ".join(found.get("in-reply-to", [])))
    return MessageHeaders(
        all=found,
        sender=senders[0] if senders else None,
        to=tuple(dict.fromkeys(to)),
        recipients=tuple(dict.fromkeys(recipients)),
        subject=decoded(found.get("subject", [""])[0]),
        message_id=next(iter(_MESSAGE_ID.findall(" ".join(found.get("message-id", [])))), None),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(_MESSAGE_ID.findall(" ".join(found.get("references", [])))),
        sent_at=_date(found.get("date", [""])[0]),
    )


def decoded(value: str) -> str:
    """A header value with its encoded words (``=?utf-8?q?...?=``) decoded."""
    try:
        return str(make_header(decode_header(value)))
    except (MessageError, LookupError, UnicodeError, ValueError, TypeError):
        return value


def _addresses(values: list[str]) -> list[str]:
    try:
        pairs = getaddresses([decoded(v) for v in values])
    except (ValueError, TypeError, IndexError):
        return []
    return [address.lower() for _, address in pairs if "@" in address]


def _date(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
