"""Hand-offs nobody can vouch for, settled by the provider's silence.

SendGrid posts a ``processed`` event, carrying our message id, for every message it
takes, usually within seconds. A message still ``handing_off`` or ``ambiguous`` long
after its hand-off (the worker was killed between writing its row and posting it, or
the answer came after the timeout) has had no event about it: SendGrid did not take
it. ``retry_unconfirmed`` marks such messages for another hand-off with the same ids
and resumes the enrollments paused for them. Only sound where the Event Webhook reaches
us; a late event after the resend would mean one duplicate, which is why the wait is
long (``sending.unconfirmed_resend_after_seconds``, 30 minutes by default).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select, update

from engine.sequences.records import MessageStatus
from engine.storage.schema import enrollments, messages
from engine.vocabulary import EnrollmentStatus

UNFINISHED = (MessageStatus.HANDING_OFF, MessageStatus.AMBIGUOUS)


def retry_unconfirmed(connection: Connection, older_than: dt.datetime, now: dt.datetime) -> int:
    """Re-arm unfinished hand-offs untouched since ``older_than`` and resume their paused
    enrollments; how many messages. (The events processor settles the confirmed ones.)"""
    stale = connection.execute(
        select(messages.c.id, messages.c.enrollment_id, messages.c.public_id).where(
            messages.c.status.in_(UNFINISHED), messages.c.updated_at < older_than
        )
    ).all()
    if not stale:
        return 0
    note = f"no provider event since the hand-off by {now.isoformat(timespec='seconds')}"
    connection.execute(
        update(messages)
        .where(messages.c.id.in_([row.id for row in stale]), messages.c.status.in_(UNFINISHED))
        .values(status=MessageStatus.RETRY, last_error=note, updated_at=now)
    )
    for row in stale:
        if row.enrollment_id is None:
            continue
        # only an enrollment paused for this very message (its error names it)
        connection.execute(
            update(enrollments)
            .where(
                enrollments.c.id == row.enrollment_id,
                enrollments.c.status == EnrollmentStatus.PAUSED,
                enrollments.c.error.contains(str(row.public_id)),
            )
            .values(status=EnrollmentStatus.ACTIVE, error=None, next_run_at=now, updated_at=now)
        )
    return len(stale)
