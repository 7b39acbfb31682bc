"""Reading one contact with its account, owner and timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from engine.storage.schema import (
    accounts,
    contacts,
    enrollments,
    messages,
    owners,
    stage_history,
)


@dataclass(frozen=True)
class TimelineEntry:
    """Something that happened to a contact, in time order."""

    at: datetime
    kind: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactView:
    """A contact as ``contacts show`` presents it."""

    contact: dict[str, Any]
    account: dict[str, Any] | None
    owner: dict[str, Any] | None
    timeline: list[TimelineEntry]
    enrollments: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contact": self.contact,
            "account": self.account,
            "owner": self.owner,
            "timeline": [
                {"at": e.at.isoformat(), "kind": e.kind, "summary": e.summary, **e.detail}
                for e in self.timeline
            ],
            "enrollments": self.enrollments,
            "messages": self.messages,
        }


def find_contact(connection: Connection, email: str) -> ContactView | None:
    """The contact with this email (case-insensitive), or ``None``."""
    record = (
        connection.execute(select(contacts).where(contacts.c.email == email.strip().lower()))
        .mappings()
        .first()
    )
    if record is None:
        return None
    contact = _plain(record)
    return ContactView(
        contact=contact,
        account=_one(connection, accounts, contact["account_id"]),
        owner=_one(connection, owners, contact["owner_id"]),
        timeline=_stage_timeline(connection, contact["id"]),
        enrollments=_enrollments(connection, contact["id"]),
        messages=_messages(connection, contact["id"]),
    )


def _one(connection: Connection, table: Any, row_id: int | None) -> dict[str, Any] | None:
    if row_id is None:
        return None
    record = connection.execute(select(table).where(table.c.id == row_id)).mappings().first()
    return None if record is None else _plain(record)


def _stage_timeline(connection: Connection, contact_id: int) -> list[TimelineEntry]:
    query = (
        select(stage_history)
        .where(stage_history.c.contact_id == contact_id)
        .order_by(stage_history.c.changed_at, stage_history.c.id)
    )
    return [
        TimelineEntry(
            at=r["changed_at"],
            kind="stage",
            summary=f"{r['from_stage'] or '(new)'} → {r['to_stage']} ({r['cause']})",
            detail={"from": r["from_stage"], "to": r["to_stage"], "cause": r["cause"]},
        )
        for r in connection.execute(query).mappings()
    ]


def _enrollments(connection: Connection, contact_id: int) -> list[dict[str, Any]]:
    query = (
        select(
            enrollments.c.id,
            enrollments.c.sequence,
            enrollments.c.status,
            enrollments.c.step_id,
            enrollments.c.next_run_at,
            enrollments.c.exit_reason,
            enrollments.c.error,
            enrollments.c.enrolled_at,
        )
        .where(enrollments.c.contact_id == contact_id)
        .order_by(enrollments.c.enrolled_at, enrollments.c.id)
    )
    return [_plain(r) for r in connection.execute(query).mappings()]


def _messages(connection: Connection, contact_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The latest messages to the contact, newest first."""
    query = (
        select(
            messages.c.public_id,
            messages.c.sequence,
            messages.c.step_id,
            messages.c.variant,
            messages.c.subject,
            messages.c.status,
            messages.c.transport,
            messages.c.sent_at,
            messages.c.last_error,
            messages.c.created_at,
        )
        .where(messages.c.contact_id == contact_id)
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(limit)
    )
    return [_plain(r) for r in connection.execute(query).mappings()]


def _plain(record: Any) -> dict[str, Any]:
    """A row as JSON-friendly values (instants as ISO 8601 strings)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dict(record).items()}
