"""Sends and replies per UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, func, select

from engine.reports._sql import utc_day
from engine.reports.filters import Scope
from engine.storage.schema import events, messages


@dataclass(frozen=True)
class DailyCount:
    """Sequence messages sent on a day, and replies to them received that day."""

    day: date
    sent: int
    replied: int


def daily_counts(connection: Connection, scope: Scope) -> list[DailyCount]:
    """Every day with a send or a reply, in order."""
    dialect = connection.dialect.name
    sent_day = utc_day(dialect, messages.c.sent_at).label("day")
    sent = select(sent_day, func.count()).where(*scope.message()).group_by(sent_day)
    reply_day = utc_day(dialect, events.c.occurred_at).label("day")
    replies = (
        select(reply_day, func.count())
        .where(events.c.kind == "replied", events.c.message_id.is_not(None))
        .where(*scope.period(events.c.occurred_at))
        .group_by(reply_day)
    )
    if scope.owner_id is not None or scope.sequence is not None:
        answered = select(messages.c.id).where(*_all_time(scope).message())
        replies = replies.where(events.c.message_id.in_(answered))
    days: dict[date, list[int]] = {}
    for day, n in connection.execute(sent):
        days.setdefault(_as_date(day), [0, 0])[0] = int(n)
    for day, n in connection.execute(replies):
        days.setdefault(_as_date(day), [0, 0])[1] = int(n)
    return [DailyCount(day, s, r) for day, (s, r) in sorted(days.items())]


def _all_time(scope: Scope) -> Scope:
    """The scope's owner and sequence; a reply in the period may answer an older message."""
    return Scope(None, None, scope.owner_id, scope.sequence)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
