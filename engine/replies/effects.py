"""The writes an inbound message makes to enrollments and stages, each one statement.

Every function changes only what is still open (or active), so applying one twice
changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select, update

from engine.sequences.model import Sequence, SequenceKind
from engine.sequences.records import ended, paused
from engine.stages import Pipeline, StageChange, record_stage_changes
from engine.storage.schema import contacts, enrollments
from engine.vocabulary import EnrollmentStatus, StageCause

_OPEN = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)


def end_enrollments(
    connection: Connection, enrollment_ids: list[int], reason: str, now: dt.datetime
) -> int:
    """Exit those of ``enrollment_ids`` still open, with ``reason``; how many."""
    if not enrollment_ids:
        return 0
    statement = (
        update(enrollments)
        .where(enrollments.c.id.in_(enrollment_ids), enrollments.c.status.in_(_OPEN))
        .values(**ended(EnrollmentStatus.EXITED, reason, now))
    )
    return int(connection.execute(statement).rowcount)


def end_contact_enrollments(
    connection: Connection, contact_id: int, reason: str, now: dt.datetime
) -> int:
    """Exit every open enrollment of one contact (who must not be emailed any more)."""
    query = select(enrollments.c.id).where(
        enrollments.c.contact_id == contact_id, enrollments.c.status.in_(_OPEN)
    )
    return end_enrollments(connection, list(connection.execute(query).scalars()), reason, now)


def pause_colleagues(
    connection: Connection,
    contact: Mapping[str, Any],
    sequences: Mapping[str, Sequence],
    now: dt.datetime,
) -> int:
    """Pause the active outreach of the others at ``contact``'s account, in the sequences
    that stop there (``account_stop``), naming who replied, as the step runner would."""
    stopping = sorted(
        s.name for s in sequences.values() if s.account_stop and s.kind is SequenceKind.OUTREACH
    )
    if contact["account_id"] is None or not stopping:
        return 0
    colleagues = select(contacts.c.id).where(
        contacts.c.account_id == contact["account_id"], contacts.c.id != contact["id"]
    )
    why = f"{contact['email']} at the same account replied (account_stop)"
    statement = (
        update(enrollments)
        .where(
            enrollments.c.contact_id.in_(colleagues),
            enrollments.c.sequence.in_(stopping),
            enrollments.c.status == EnrollmentStatus.ACTIVE.value,
        )
        .values(**paused(why, now))
    )
    return int(connection.execute(statement).rowcount)


def move_forward(
    connection: Connection,
    pipeline: Pipeline,
    contact_id: int,
    stage: str,
    detail: str,
    now: dt.datetime,
) -> bool:
    """Move a contact to ``stage`` when that is further down the pipeline (cause ``reply``)."""
    query = select(contacts.c.stage).where(contacts.c.id == contact_id)
    current = connection.execute(query).scalar()
    if current is None or stage not in pipeline or current == stage:
        return False
    if current in pipeline and pipeline.get(stage).position <= pipeline.get(current).position:
        return False  # a reply never moves a contact back (from negotiation to qualification)
    values = {"stage": stage, "stage_entered_at": now, "updated_at": now}
    connection.execute(update(contacts).where(contacts.c.id == contact_id).values(**values))
    change = StageChange(contact_id, current, stage, detail)
    record_stage_changes(connection, [change], StageCause.REPLY, now)
    return True


def back_at(
    returns_on: dt.date | None,
    received: dt.datetime,
    resume_after: dt.timedelta,
    timezone: str | None,
    default_timezone: str,
) -> dt.datetime:
    """When an absent contact is back: the start of the day after ``returns_on`` in their
    timezone, else ``resume_after`` after the notice came."""
    if returns_on is None:
        return received + resume_after
    day = dt.datetime.combine(
        returns_on + dt.timedelta(days=1), dt.time(), _zone(timezone, default_timezone)
    )
    return day.astimezone(dt.UTC)


def postpone(connection: Connection, contact_id: int, until: dt.datetime, now: dt.datetime) -> int:
    """Keep the contact's active enrollments active, their next run moved to ``until``
    (never earlier than it was); how many moved."""
    if until <= now:
        return 0
    statement = (
        update(enrollments)
        .where(
            enrollments.c.contact_id == contact_id,
            enrollments.c.status == EnrollmentStatus.ACTIVE.value,
            enrollments.c.next_run_at.is_(None) | (enrollments.c.next_run_at < until),
        )
        .values(next_run_at=until, updated_at=now)
    )
    return int(connection.execute(statement).rowcount)


def _zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default):
        try:
            return ZoneInfo(candidate or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")
