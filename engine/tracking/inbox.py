"""The durable inbox: every webhook request is stored raw before it is acknowledged.

Processing reads the rows later (a worker, or ``salescycle events replay``), so a bug
fixed tomorrow can be replayed over what arrived today.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum

from sqlalchemy import Connection, insert

from engine.storage.schema import webhook_inbox


class InboxSource(StrEnum):
    """Where an inbox row came from; each source has its own parser."""

    SENDGRID_EVENTS = "sendgrid_events"  # a JSON array as SendGrid's Event Webhook posts it
    SENDGRID_INBOUND = "sendgrid_inbound"  # an Inbound Parse multipart post
    TRACKING = "tracking"  # our own open/click/unsubscribe hit, as a JSON object


class InboxStatus(StrEnum):
    """Where one inbox row stands."""

    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    UNMATCHED = "unmatched"  # an inbound message answering nothing of ours: kept, listed


def store_raw(
    connection: Connection,
    source: InboxSource,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime,
) -> int:
    """Keep one request as it arrived; its row id. The caller commits before answering."""
    row = {
        "source": str(source),
        "received_at": now,
        "headers": dict(headers),
        "body": body,
        "status": InboxStatus.RECEIVED,
    }
    inserted = connection.execute(insert(webhook_inbox).values(**row).returning(webhook_inbox.c.id))
    return int(inserted.scalar_one())
