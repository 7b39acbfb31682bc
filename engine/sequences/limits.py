"""Caps that keep a sales mailbox human: a gap between emails to one contact, a daily
cap per owner, and throttles per recipient domain and for the whole provider.

The caps are counted in the database (exact, across processes and restarts); the
throttles are Dramatiq rate limiters (``workers/throttle.py``), behind ``Throttle``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SendLimits:
    """``None`` turns a cap off."""

    contact_gap: dt.timedelta | None = dt.timedelta(hours=48)
    owner_daily_cap: int | None = 300


class Throttle(Protocol):
    """Admits sends to recipient domains now, or says how long each must wait."""

    def admit(self, recipient_domains: Sequence[str]) -> list[dt.timedelta | None]: ...


class NoThrottle:
    """Admits everything (tests, and a provider without rate limits)."""

    def admit(self, recipient_domains: Sequence[str]) -> list[dt.timedelta | None]:
        return [None] * len(recipient_domains)
