"""Pausing, resuming and stopping enrollments by hand, for one contact or a whole sequence."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ColumnElement, Connection, and_, update

from engine.storage.schema import enrollments
from engine.vocabulary import EnrollmentStatus


class Control(StrEnum):
    """What a person can do to enrollments."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


_FROM = {
    Control.PAUSE: (EnrollmentStatus.ACTIVE,),
    Control.RESUME: (EnrollmentStatus.PAUSED,),
    Control.STOP: (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED),
}


def control_enrollments(
    connection: Connection,
    action: Control,
    now: dt.datetime,
    sequence: str | None = None,
    contact_id: int | None = None,
) -> int:
    """Apply ``action`` to the open enrollments selected; how many changed.

    Resuming runs the enrollment at once (its next step decides when to send) and clears
    the error that paused it; stopping ends it for good (``exit_reason`` ``stopped``).
    """
    if sequence is None and contact_id is None:
        raise ValueError("name a sequence, a contact, or both")
    where: list[ColumnElement[bool]] = [enrollments.c.status.in_(_FROM[action])]
    if sequence is not None:
        where.append(enrollments.c.sequence == sequence)
    if contact_id is not None:
        where.append(enrollments.c.contact_id == contact_id)
    values: dict[str, object] = {"updated_at": now, "claimed_by": None, "claimed_until": None}
    if action is Control.PAUSE:
        values.update(status=EnrollmentStatus.PAUSED, next_run_at=None, error="paused by hand")
    elif action is Control.RESUME:
        values.update(status=EnrollmentStatus.ACTIVE, next_run_at=now, error=None)
    else:
        values.update(status=EnrollmentStatus.EXITED, exit_reason="stopped", next_run_at=None,
                      ended_at=now)  # fmt: skip
    result = connection.execute(update(enrollments).where(and_(*where)).values(**values))
    return int(result.rowcount)
