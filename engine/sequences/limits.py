"""Caps that keep a sales mailbox human: a gap between emails to one contact, a daily
cap per owner, and throttles per recipient domain and for the whole provider.

The caps are counted in the database (exact, across processes and restarts); the
throttles are Dramatiq rate limiters (``workers/throttle.py``), behind ``Throttle``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, func, select

from engine.storage.schema import messages


@dataclass(frozen=True)
class SendLimits:
    """``None`` turns a cap off."""

    contact_gap: dt.timedelta | None = dt.timedelta(hours=48)
    owner_daily_cap: int | None = 300


class Throttle(Protocol):
    """Admits a send to a recipient domain now, or says how long to wait."""

    def admit(self, recipient_domain: str) -> dt.timedelta | None: ...


class NoThrottle:
    """Admits everything (tests, and a provider without rate limits)."""

    def admit(self, recipient_domain: str) -> dt.timedelta | None:
        return None


def earliest_allowed(
    connection: Connection, limits: SendLimits, contact_id: int, from_email: str,
    now: dt.datetime,
) -> dt.datetime | None:  # fmt: skip
    """When the caps next allow an email to this contact from this sender; ``None``: now."""
    later = []
    if limits.contact_gap is not None:
        last = connection.execute(select(func.max(messages.c.sent_at)).where(
            messages.c.contact_id == contact_id, messages.c.status == "sent")).scalar()  # fmt: skip
        if last is not None and last + limits.contact_gap > now:
            later.append(last + limits.contact_gap)
    if limits.owner_daily_cap is not None:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        today = connection.execute(select(func.count()).select_from(messages).where(
            messages.c.from_email == from_email, messages.c.status == "sent",
            messages.c.sent_at >= midnight)).scalar_one()  # fmt: skip
        if today >= limits.owner_daily_cap:
            later.append(midnight + dt.timedelta(days=1))
    return max(later) if later else None
