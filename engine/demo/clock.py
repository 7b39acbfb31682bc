"""The demo's simulated clock, and how far each simulated step moves it.

Every component that needs "now" reads this one clock (the scheduler loop, the worker
actors, the throttle, the web app), so 60 days pass in a minute or two. Steps are short
while someone somewhere in the contacts' timezones (Europe to the US west coast) is at
work, long at night and at weekends.
"""

from __future__ import annotations

import datetime as dt
import threading

UTC = dt.UTC
BUSY_STEP = dt.timedelta(minutes=30)  # European and American working hours
QUIET_STEP = dt.timedelta(hours=2)  # nights
WEEKEND_STEP = dt.timedelta(hours=4)
MIN_STEP = dt.timedelta(minutes=1)  # when work is due sooner (a throttled send)
_BUSY_HOURS_UTC = range(6, 24)  # 07:00 Copenhagen to 17:00 Los Angeles (plus the hour after)


class SimClock:
    """A clock that stands still until the driver moves it (an ``engine.clock.Clock``)."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs an aware start instant")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._now

    def move_to(self, instant: dt.datetime) -> None:
        """Move forward to ``instant`` (never back: the engine's leases expect time to run)."""
        with self._lock:
            if instant < self._now:
                raise ValueError(f"the clock cannot go back from {self._now} to {instant}")
            self._now = instant


def regular_step(now: dt.datetime) -> dt.timedelta:
    """The step from ``now`` when nothing is due sooner."""
    utc = now.astimezone(UTC)
    if utc.weekday() >= 5 and not (utc.weekday() == 5 and utc.hour < 2):
        return WEEKEND_STEP
    return BUSY_STEP if utc.hour in _BUSY_HOURS_UTC or utc.hour < 2 else QUIET_STEP


def next_instant(now: dt.datetime, due: dt.datetime | None, horizon: dt.datetime) -> dt.datetime:
    """Where the next step lands: the regular step, or sooner when work is due, never past
    ``horizon`` (the end of the simulation)."""
    step = now + regular_step(now)
    if due is not None and due < step:
        step = max(due, now + MIN_STEP)
    return min(step, horizon)
