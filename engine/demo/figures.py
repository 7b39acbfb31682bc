"""The demo's end figures, read from the database the engine wrote (not from the
simulator's own notes): what was sent, what came back, where the pipeline ended."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, select

from engine.storage.schema import (
    contacts,
    enrollments,
    events,
    messages,
    stage_history,
    suppressions,
    webhook_inbox,
)

NURTURE = "customer-nurture"
REFERRAL_STEP = "referral-request"


def demo_figures(connection: Connection) -> dict[str, int]:
    """Named counts, in the order they are printed; the same seed gives the same ones."""
    sent = and_(messages.c.status == "sent", messages.c.sequence.is_not(None))
    figures = {
        "contacts": _count(connection, contacts),
        "emails sent": _count(connection, messages, sent),
        "notes and forwards to reps": _count(
            connection, messages, and_(messages.c.status == "sent", messages.c.sequence.is_(None))
        ),
    }
    for kind in ("delivered", "deferred", "opened", "clicked"):
        figures[kind] = _events(connection, kind, machine=False)
        if kind in ("opened", "clicked"):
            figures[f"{kind} by machines (flagged)"] = _events(connection, kind, machine=True)
    figures["replied"] = _events(connection, "replied")
    figures |= {f"  replied: {intent}": n for intent, n in _intents(connection)}
    for kind in ("auto_replied", "bounced", "unsubscribed", "complained"):
        figures[kind] = _events(connection, kind)
    figures["suppressed addresses"] = _count(connection, suppressions)
    figures["new customers"] = _count(
        connection, stage_history, stage_history.c.to_stage == "customer"
    ) - _count(connection, stage_history, and_(stage_history.c.to_stage == "customer",
                                                 stage_history.c.cause == "crm"))  # fmt: skip
    figures["customers now"] = _count(connection, contacts, contacts.c.stage == "customer")
    figures["enrolled in customer-nurture"] = _count(
        connection, enrollments, enrollments.c.sequence == NURTURE
    )
    figures["referral requests sent"] = _count(
        connection, messages, and_(sent, messages.c.step_id == REFERRAL_STEP)
    )
    figures["referred contacts created"] = _count(
        connection, contacts, contacts.c.referred_by_id.is_not(None)
    )
    for source, n in _inbox(connection):
        figures[f"webhook requests: {source}"] = n
    return figures


def _count(connection: Connection, table: Any, *where: Any) -> int:
    query = select(func.count()).select_from(table)
    return int(connection.execute(query.where(*where) if where else query).scalar_one())


def _events(connection: Connection, kind: str, machine: bool | None = None) -> int:
    where = [events.c.kind == kind]
    if machine is not None:
        where.append(events.c.machine.is_(machine))
    return _count(connection, events, *where)


def _intents(connection: Connection) -> list[tuple[str, int]]:
    intent = events.c.detail["intent"].as_string()
    query = (
        select(intent, func.count())
        .where(events.c.kind == "replied")
        .group_by(intent)
        .order_by(intent)
    )
    return [(str(i), int(n)) for i, n in connection.execute(query)]


def _inbox(connection: Connection) -> list[tuple[str, int]]:
    query = (
        select(webhook_inbox.c.source, func.count())
        .group_by(webhook_inbox.c.source)
        .order_by(webhook_inbox.c.source)
    )
    return [(str(s), int(n)) for s, n in connection.execute(query)]
