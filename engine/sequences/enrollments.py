"""Changing one enrollment's state (the step runner of [4/8] drives it; this is its record)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, update

from engine.storage.schema import enrollments
from engine.vocabulary import EnrollmentStatus


def pause_for_error(
    connection: Connection, enrollment_id: int, error: str, now: dt.datetime
) -> bool:
    """Pause an active enrollment and record why (e.g. its template failed for this contact).

    Only this enrollment stops; the contact's other enrollments and every other contact
    go on. ``salescycle contacts show`` lists the error. False if it was not active.
    """
    result = connection.execute(
        update(enrollments)
        .where(enrollments.c.id == enrollment_id)
        .where(enrollments.c.status == EnrollmentStatus.ACTIVE)
        .values(status=EnrollmentStatus.PAUSED, error=error, next_run_at=None, updated_at=now)
    )
    return result.rowcount == 1
