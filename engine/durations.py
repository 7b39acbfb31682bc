"""Durations (``14d``, ``2w``) and dates (``2026-01-31``, ``30d ago``) as users write them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
          "w": timedelta(weeks=1)}  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s+ago\s*$")
DURATION_HINT = "write a number and a unit: 30m, 12h, 14d or 2w"
DATE_HINT = "write a date (2026-01-31), a date and time in ISO 8601, or a relative one (30d ago)"


def parse_duration(text: str) -> timedelta:
    """``14d`` -> 14 days; raises ``ValueError`` naming the valid forms."""
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"'{text}' is not a duration; {DURATION_HINT}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(duration: timedelta) -> str:
    """The shortest way to write ``duration`` as :func:`parse_duration` reads it (``21d``)."""
    minutes = int(duration.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def parse_instant(text: str | date, now: datetime) -> datetime:
    """An absolute date or instant, or one relative to ``now`` (``30d ago``), in UTC.

    A bare date means its midnight in UTC.
    """
    if isinstance(text, datetime):
        return text.astimezone(UTC) if text.tzinfo else text.replace(tzinfo=UTC)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day, tzinfo=UTC)
    relative = _RELATIVE.match(text)
    if relative is not None:
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a date; {DATE_HINT}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_relative(text: object) -> bool:
    """Whether ``text`` is written relative to now (``30d ago``)."""
    return isinstance(text, str) and _RELATIVE.match(text) is not None
