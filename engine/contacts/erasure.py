"""Erasing a person: their contact row and everything that hangs off it, kept only as a hash.

Deleting the contact cascades (schema foreign keys) to its stage history, enrollments,
messages and events. What survives elsewhere is scrubbed: events about the address that
matched no contact, and enrollment notes that name it (a colleague's ``account_stop``).
Plain suppressions of the address become one hashed ``erased`` entry, which keeps the
person from ever being emailed again. Raw webhook bodies in ``webhook_inbox`` are left
as the provider sent them (they are the recovery log).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Table,
    Text,
    cast,
    delete,
    func,
    select,
    update,
)

from engine.contacts.normalise import RejectedRow, normalise_email
from engine.contacts.suppressions import (
    ERASED,
    SuppressionError,
    add_suppressions,
    hashed_email,
    suppression_keys,
)
from engine.storage.schema import contacts, enrollments, events, messages, stage_history
from engine.storage.schema import suppressions as suppressions_table

_SCRUBBED = "[erased]"


@dataclass
class Erasure:
    """What erasing one address removed."""

    email_hash: str
    contact: bool = False
    messages: int = 0
    events: int = 0
    enrollments: int = 0
    stage_changes: int = 0
    suppressions_replaced: int = 0
    notes_scrubbed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def erase_address(connection: Connection, email: str, now: dt.datetime) -> Erasure:
    """Remove the personal data of ``email`` and keep only its hashed suppression."""
    try:
        address = normalise_email(email.strip())
    except RejectedRow as exc:
        raise SuppressionError(str(exc)) from None
    erasure = Erasure(email_hash=hashed_email(address))
    contact_id = connection.execute(
        select(contacts.c.id).where(contacts.c.email == address)
    ).scalar()
    if contact_id is not None:
        _count_dependents(connection, int(contact_id), erasure)
        connection.execute(delete(contacts).where(contacts.c.id == contact_id))
        erasure.contact = True
    erasure.events += _delete_unmatched_events(connection, address)
    erasure.notes_scrubbed = _scrub_notes(connection, address)
    plain = suppressions_table.c.email == address
    replaced = connection.execute(delete(suppressions_table).where(plain))
    erasure.suppressions_replaced = int(replaced.rowcount)
    add_suppressions(connection, [{
        "email": suppression_keys(address)[1], "reason": ERASED, "source": "erasure",
        "detail": None, "created_at": now}])  # fmt: skip
    return erasure


def _count_dependents(connection: Connection, contact_id: int, erasure: Erasure) -> None:
    def count(table: Table, column: Column[Any]) -> int:
        query = select(func.count()).select_from(table).where(column == contact_id)
        return int(connection.execute(query).scalar_one())

    erasure.messages = count(messages, messages.c.contact_id)
    erasure.events = count(events, events.c.contact_id)
    erasure.enrollments = count(enrollments, enrollments.c.contact_id)
    erasure.stage_changes = count(stage_history, stage_history.c.contact_id)


def _contains(column: ColumnElement[Any], address: str) -> ColumnElement[bool]:
    escaped = address.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(cast(column, Text)).like(f"%{escaped}%", escape="\\")


def _delete_unmatched_events(connection: Connection, address: str) -> int:
    """Events about the address that matched no contact (their payload names it)."""
    orphan = events.c.contact_id.is_(None)
    statement = delete(events).where(orphan, _contains(events.c.detail, address))
    return int(connection.execute(statement).rowcount)


def _scrub_notes(connection: Connection, address: str) -> int:
    scrubbed = 0
    for column in (enrollments.c.error, enrollments.c.exit_reason):
        statement = (
            update(enrollments)
            .where(_contains(column, address))
            .values({column.name: func.replace(column, address, _SCRUBBED)})
        )
        scrubbed += int(connection.execute(statement).rowcount)
    return scrubbed
