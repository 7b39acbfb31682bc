"""Inbound messages kept because they answer nothing of ours (inbox status ``unmatched``).

They are never dropped: an operator lists them (``salescycle inbound unmatched``) to
see who wrote, to whom, and why no message of ours was found.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import Connection, func, select

from engine.replies.inbound_parse import InboundPostError, read_post
from engine.storage.schema import webhook_inbox
from engine.tracking.inbox import InboxStatus

_HEADERS = BytesHeaderParser(policy=policy.default)


@dataclass(frozen=True)
class UnmatchedMessage:
    """One kept inbound message, as much as its headers say."""

    inbox_id: int
    received_at: dt.datetime
    sender: str | None
    to: str | None
    subject: str | None
    message_id: str | None
    note: str | None  # why it matched nothing

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "received_at": self.received_at.isoformat()}


def count_unmatched(connection: Connection) -> int:
    """How many inbound messages are kept unmatched."""
    query = select(func.count()).where(webhook_inbox.c.status == InboxStatus.UNMATCHED.value)
    return int(connection.execute(query).scalar_one())


def unmatched_messages(connection: Connection, limit: int = 100) -> list[UnmatchedMessage]:
    """The newest ``limit`` unmatched inbound messages, newest first."""
    query = (
        select(webhook_inbox)
        .where(webhook_inbox.c.status == InboxStatus.UNMATCHED.value)
        .order_by(webhook_inbox.c.id.desc())
        .limit(limit)
    )
    return [_read(row) for row in connection.execute(query).mappings()]


def _read(row: Any) -> UnmatchedMessage:
    headers: dict[str, str | None] = {}
    try:
        post = read_post(bytes(row["body"]), str((row["headers"] or {}).get("content-type", "")))
        parsed = _HEADERS.parsebytes(post.mime)
        headers = {name: _header(parsed, name) for name in ("From", "To", "Subject", "Message-ID")}
        if post.envelope_to:
            headers["To"] = ", ".join(post.envelope_to)
    except InboundPostError:
        pass  # listed all the same, with what the row itself says
    return UnmatchedMessage(
        inbox_id=int(row["id"]),
        received_at=row["received_at"],
        sender=headers.get("From"),
        to=headers.get("To"),
        subject=headers.get("Subject"),
        message_id=headers.get("Message-ID"),
        note=row["error"],
    )


def _header(message: Any, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError, AttributeError):  # a header too broken to read
        return None
    return str(value) if value is not None else None
