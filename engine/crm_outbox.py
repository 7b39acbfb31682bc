"""The CRM outbox: what the CRM must hear of, queued in the transaction that made it.

A row is written with the change it reports, so it exists exactly when that change
commits; ``engine.contacts.crm_webhook`` POSTs the rows and marks them delivered. This
module sits below the concerns (it needs only the schema) so that ``engine.stages``,
which ``engine.contacts`` imports, can queue stage changes without an import cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, case, func, insert, select

from engine.storage.bulk import execute_many
from engine.storage.schema import contacts, crm_outbox


class CrmEventKind(StrEnum):
    """What a queued row reports; the ``type`` of the JSON the receiver gets."""

    STAGE_CHANGED = "stage_changed"
    REPLIED = "replied"


def enqueue_many(
    connection: Connection,
    kind: CrmEventKind,
    items: Sequence[tuple[int, Mapping[str, Any]]],
    now: dt.datetime,
) -> None:
    """Queue one row per ``(contact id, payload)`` in one statement, due at ``now``."""
    if not items:
        return
    rows = [
        {"kind": kind.value, "contact_id": contact_id, "payload": dict(payload),
         "created_at": now, "attempts": 0, "next_attempt_at": now}
        for contact_id, payload in items
    ]  # fmt: skip
    execute_many(connection, insert(crm_outbox), rows)


def enqueue(
    connection: Connection,
    kind: CrmEventKind,
    contact_id: int,
    payload: Mapping[str, Any],
    now: dt.datetime,
) -> None:
    """Queue one change of ``contact_id`` in the caller's transaction."""
    enqueue_many(connection, kind, [(contact_id, payload)], now)


def enqueue_reply(
    connection: Connection,
    contact_id: int,
    now: dt.datetime,
    *,
    intent: str | None = None,
    message_id: int | None = None,
    sequence: str | None = None,
    subject: str | None = None,
) -> None:
    """Queue "``contact_id`` replied" (to our message ``message_id``, read as ``intent``).

    The reply's text is left out on purpose: the outbox keeps rows for an erased
    contact, and the owner receives the reply itself in their inbox.
    """
    payload = {
        "intent": intent,
        "message_id": message_id,
        "sequence": sequence,
        "subject": subject[:998] if subject is not None else None,
    }
    enqueue(connection, CrmEventKind.REPLIED, contact_id, payload, now)


@dataclass(frozen=True)
class OutboxSummary:
    """How many rows wait, were given up on and were delivered; the oldest undelivered."""

    pending: int
    failed: int
    delivered: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "failed": self.failed, "delivered": self.delivered,
                "rows": self.rows}  # fmt: skip


def outbox_summary(connection: Connection, limit: int = 100) -> OutboxSummary:
    """Counts by status, and up to ``limit`` undelivered rows (pending or failed) in order."""
    status = case(
        (crm_outbox.c.delivered_at.is_not(None), "delivered"),
        (crm_outbox.c.next_attempt_at.is_(None), "failed"),
        else_="pending",
    )
    counts = {
        str(name): int(count)
        for name, count in connection.execute(select(status, func.count()).group_by(status))
    }
    query = (
        select(
            crm_outbox.c.id, crm_outbox.c.kind, crm_outbox.c.contact_id, contacts.c.email,
            crm_outbox.c.created_at, crm_outbox.c.attempts, crm_outbox.c.next_attempt_at,
            crm_outbox.c.last_error,
        )
        .outerjoin(contacts, contacts.c.id == crm_outbox.c.contact_id)
        .where(crm_outbox.c.delivered_at.is_(None))
        .order_by(crm_outbox.c.id)
        .limit(limit)
    )  # fmt: skip
    rows = [
        {**row, "status": "failed" if row["next_attempt_at"] is None else "pending"}
        for row in connection.execute(query).mappings()
    ]
    return OutboxSummary(
        counts.get("pending", 0), counts.get("failed", 0), counts.get("delivered", 0), rows
    )
