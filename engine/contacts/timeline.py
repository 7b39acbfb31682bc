"""A contact's events, each with the public id of the message it is about (for timelines)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from engine.storage.schema import events, messages


def contact_events(
    connection: Connection, contact_id: int, limit: int = 500
) -> list[dict[str, Any]]:
    """The contact's latest events, oldest first; ``message`` is the message's public id."""
    query = (
        select(
            messages.c.public_id.label("message"),
            events.c.kind,
            events.c.occurred_at,
            events.c.url,
            events.c.link_tag,
            events.c.machine,
            events.c.reject_reason,
        )
        .select_from(events.outerjoin(messages, messages.c.id == events.c.message_id))
        .where(events.c.contact_id == contact_id)
        .order_by(events.c.occurred_at.desc(), events.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in reversed(connection.execute(query).mappings().all())]
