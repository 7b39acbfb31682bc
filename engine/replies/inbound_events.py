"""The events an inbound message records: one reply, out-of-office or unsubscribe event, or
one bounce per failed address; provider ``inbound``.

The event id is the message's own Message-ID, so the same message posted twice (the
provider retried, or two inbox rows hold it) is one event; without a Message-ID it is
``inbound:<inbox row id>``. Each event keeps the inbox row that recorded it
(``raw.inbox_row``): later processing of another row tells it is a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from engine.replies.matching import Match
from engine.replies.model import Classification, InboundKind
from engine.storage.schema import events
from engine.tracking.events import RejectReason, TrackingEvent
from engine.vocabulary import EventKind

PROVIDER = "inbound"
_KINDS = {
    InboundKind.REPLY: EventKind.REPLIED,
    InboundKind.AUTO_REPLY: EventKind.AUTO_REPLIED,
    InboundKind.UNSUBSCRIBE_REQUEST: EventKind.UNSUBSCRIBED,
}
_MAX_EVENT_ID = 250  # longer Message-IDs are hashed (the column holds 300)


def event_id(classification: Classification, inbox_row_id: int) -> str:
    """The provider event id: the Message-ID, else ``inbound:<inbox row id>``."""
    message_id = (classification.message_id or "").strip()
    if not message_id:
        return f"inbound:{inbox_row_id}"
    if len(message_id) > _MAX_EVENT_ID:
        return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()
    return message_id


def inbound_events(
    kind: InboundKind,
    classification: Classification,
    match: Match | None,
    inbox_row_id: int,
    at: dt.datetime,
) -> list[TrackingEvent]:
    """The events of one inbound message read as ``kind``."""
    key = event_id(classification, inbox_row_id)
    raw = {
        "inbox_row": inbox_row_id,
        "from": classification.sender,
        "subject": classification.subject[:300],
        "reason": classification.reason,
        "matched_by": match.via.value if match else None,
    }
    ours = match.message if match else None
    if kind is InboundKind.BOUNCE:
        return _bounces(classification, ours, key, at, raw)
    event_kind = _KINDS[kind]
    return [
        TrackingEvent(
            kind=event_kind,
            provider=PROVIDER,
            provider_event_id=key,
            occurred_at=at,
            message_id=ours["public_id"] if ours else None,
            recipient=str(ours["to_email"]).lower() if ours else classification.sender,
            description=classification.reason[:500] or None,
            intent=classification.intent if event_kind is EventKind.REPLIED else None,
            raw=raw,
        )
    ]


def _bounces(
    classification: Classification,
    ours: Mapping[str, Any] | None,
    key: str,
    at: dt.datetime,
    raw: Mapping[str, Any],
) -> list[TrackingEvent]:
    to_email = str(ours["to_email"]).lower() if ours else None
    bounced = [(b.email.lower(), b.hard) for b in classification.bounced]
    if not bounced and to_email:
        bounced = [(to_email, False)]  # a notification naming no address: hardness unknown
    return [
        TrackingEvent(
            kind=EventKind.BOUNCED,
            provider=PROVIDER,
            provider_event_id=f"{key}:{email}"[:300],
            occurred_at=at,
            message_id=ours["public_id"] if ours and email == to_email else None,
            recipient=email,
            reject_reason=RejectReason.HARD_BOUNCE if hard else RejectReason.SOFT_BOUNCE,
            description=classification.reason[:500] or None,
            raw=raw,
        )
        for email, hard in bounced
    ]


def recorded_by(connection: Connection, batch: Sequence[TrackingEvent]) -> int | None:
    """The inbox row that recorded these events first, if any did."""
    if not batch:
        return None
    query = select(events.c.detail).where(
        events.c.provider == PROVIDER,
        events.c.provider_event_id.in_([e.provider_event_id for e in batch]),
    )
    for detail in connection.execute(query).scalars():
        row = (detail.get("raw") or {}).get("inbox_row") if isinstance(detail, dict) else None
        if isinstance(row, int):
            return row
    return None
