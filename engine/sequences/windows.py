"""Send windows: when a sequence may send, in the recipient's own timezone.

Pure functions over timezone-aware instants: every input and output is in UTC (naive
datetimes are refused). Local times are resolved the way a person reads a clock: on a
fall-back day an ambiguous time means its first occurrence, and on a spring-forward day a
time inside the gap means the first instant after the gap (02:30 -> 03:00).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo

import holidays

MON_FRI = frozenset(range(5))
EVERY_DAY = frozenset(range(7))
END_OF_DAY = time.max  # as a closing time: local midnight at the end of the day
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {name: i for names in (_DAY_NAMES, _FULL_NAMES) for i, name in enumerate(names)}
DAYS_HINT = f"valid: {', '.join(_DAY_NAMES)} (e.g. mon-fri, mon,wed,fri or sun-thu)"
HOURS_HINT = "write opening and closing times within one day, e.g. 08:30-16:30 or 9-17"
_HOURS = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*$")
_SEARCH_DAYS = 366
# Holiday categories beyond "public" that close offices in practice (the library's own data).
_EXTRA_CATEGORIES = {"DK": ("optional",), "SE": ("de_facto",)}


@dataclass(frozen=True)
class SendWindow:
    """When a sequence may send: weekdays and local hours, in the recipient's timezone."""

    days: frozenset[int]  # 0 = Monday ... 6 = Sunday
    start: time  # local opening time, inclusive
    end: time  # local closing time, exclusive; END_OF_DAY means midnight at the day's end
    holidays: bool = True  # skip the public holidays of the recipient's country
    jitter_minutes: int = 7  # spread sends over [0, jitter) minutes after a computed instant

    def __post_init__(self) -> None:
        if not self.days <= EVERY_DAY:
            raise ValueError(f"window days must be 0 (Monday) to 6 (Sunday), got {self.days}")
        if self.end <= self.start:
            raise ValueError("a window's end must come after its start (no overnight windows)")
        if self.jitter_minutes < 0:
            raise ValueError("jitter_minutes must be 0 or more")


ALWAYS = SendWindow(EVERY_DAY, time(0), END_OF_DAY, holidays=False, jitter_minutes=0)


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri``, ``mon,wed,fri``, ``sun-thu`` (ranges wrap) -> weekday numbers."""
    parts = [part.strip() for part in str(text).lower().split(",")]
    if not any(parts):
        raise ValueError(f"no days given; {DAYS_HINT}")
    days: set[int] = set()
    for part in parts:
        names = [name.strip() for name in part.split("-")]
        if len(names) > 2:
            raise ValueError(f"'{part}' is not a day or a range of days; {DAYS_HINT}")
        begin, stop = _day(names[0]), _day(names[-1])
        days.update((begin + i) % 7 for i in range((stop - begin) % 7 + 1))
    return frozenset(days)


def _day(name: str) -> int:
    if name not in _DAYS:
        raise ValueError(f"unknown day '{name}'; {DAYS_HINT}")
    return _DAYS[name]


def parse_hours(text: str) -> tuple[time, time]:
    """``08:30-16:30`` or ``9-17`` -> (opening, closing); ``24:00`` closes at END_OF_DAY."""
    match = _HOURS.match(str(text))
    if match is None:
        raise ValueError(f"'{text}' is not a range of hours; {HOURS_HINT}")
    hour1, minute1, hour2, minute2 = match.groups()
    start, end = _clock(text, hour1, minute1), _clock(text, hour2, minute2)
    if end <= start:
        raise ValueError(f"'{text}' ends before it starts; windows may not cross midnight")
    return start, end


def _clock(text: str, hour: str, minute: str | None) -> time:
    h, m = int(hour), int(minute or 0)
    if h == 24 and m == 0:
        return END_OF_DAY
    if h > 23 or m > 59:
        raise ValueError(f"'{text}' has a time past 24:00; {HOURS_HINT}")
    return time(h, m)


def is_holiday(day: date, country: str | None) -> bool:
    """Whether ``day`` is a public holiday in ``country`` (ISO 3166 alpha-2, any case).

    An unknown or missing country has no holidays.
    """
    calendar = _calendar(country.strip().upper(), day.year) if country else None
    return calendar is not None and day in calendar


@cache
def _calendar(country: str, year: int) -> holidays.HolidayBase | None:
    if country not in holidays.list_supported_countries():
        return None
    categories = ("public", *_EXTRA_CATEGORIES.get(country, ()))
    return holidays.country_holidays(country, years=year, categories=categories)


def is_open_day(window: SendWindow, day: date, country: str | None) -> bool:
    """Whether the window opens at all on the local date ``day``."""
    if day.weekday() not in window.days:
        return False
    return not (window.holidays and is_holiday(day, country))


def next_open(window: SendWindow, after: datetime, tz: ZoneInfo, country: str | None) -> datetime:
    """The earliest instant >= ``after`` at which the window is open in ``tz``, in UTC."""
    return _next_slot(window, after, tz, country)[0]


def _next_slot(
    window: SendWindow, after: datetime, tz: ZoneInfo, country: str | None
) -> tuple[datetime, datetime]:
    """(the next open instant, the closing instant of that day's window), both in UTC."""
    after = _utc(after)
    # from the day before: a fall-back across midnight can put `after` back a local day
    first = after.astimezone(tz).date() - timedelta(days=1)
    for offset in range(_SEARCH_DAYS + 2):
        day = first + timedelta(days=offset)
        if not is_open_day(window, day, country):
            continue
        opening, closing = _bounds(window, day, tz)
        if after < closing:
            return max(after, opening), closing
    raise ValueError(
        f"the window never opens within {_SEARCH_DAYS} days of {after.isoformat()}; "
        "check its days and holidays"
    )


def _bounds(window: SendWindow, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which the window opens and closes on the local date ``day``."""
    opening = _instant(day, window.start, tz)
    if window.end == END_OF_DAY:
        return opening, _instant(day + timedelta(days=1), time(0), tz)
    return opening, _instant(day, window.end, tz)


def _instant(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock in ``tz`` reads ``clock`` on ``day``.

    Ambiguous (fall-back) times give the first occurrence; times in a spring-forward gap
    give the first instant after the gap.
    """
    wall = datetime.combine(day, clock)
    early = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: the earlier offset
    if early.astimezone(tz).replace(tzinfo=None) == wall:
        return early
    return _gap_end(wall, tz)


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant that skips the nonexistent local time ``wall``."""
    # fold=1 reads the wall time with the offset after the gap: an instant before it
    low = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(wall.replace(tzinfo=tz).astimezone(UTC).timestamp())
    while high - low > 1:  # invariant: local(low) < wall <= local(high)
        middle = (low + high) // 2
        if _local_wall(middle, tz) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _local_wall(timestamp: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(timestamp, tz).replace(tzinfo=None)


def add_business_days(
    start: datetime,
    count: int,
    tz: ZoneInfo,
    country: str | None,
    days: frozenset[int] = MON_FRI,
) -> datetime:
    """The same local wall-clock time ``count`` open days later (holidays skipped), in UTC."""
    start = _utc(start)
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if count == 0:
        return start
    local = start.astimezone(tz)
    day = local.date()
    for _ in range(count):
        day = _next_open_day(day, days, country)
    return _instant(day, local.time(), tz)


def _next_open_day(day: date, days: frozenset[int], country: str | None) -> date:
    for offset in range(1, _SEARCH_DAYS + 1):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() in days and not is_holiday(candidate, country):
            return candidate
    raise ValueError(f"no open day within {_SEARCH_DAYS} days of {day}; check the days")


def jitter(key: str, minutes: int) -> timedelta:
    """A delay in [1 s, ``minutes``) with second resolution, always the same for ``key``.

    Never zero, so no message lands exactly on the window's opening second.
    """
    if minutes < 0:
        raise ValueError(f"jitter minutes must be 0 or more, got {minutes}")
    if minutes == 0:
        return timedelta(0)
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"sendwindow").digest()
    return timedelta(seconds=1 + int.from_bytes(digest, "big") % (minutes * 60 - 1))


def schedule(
    window: SendWindow, after: datetime, tz: ZoneInfo, country: str | None, key: str
) -> datetime:
    """When to send: the next open instant plus the key's jitter, before that day's close."""
    opening, closing = _next_slot(window, after, tz, country)
    latest = max(opening, closing - timedelta(seconds=1))
    return min(opening + jitter(key, window.jitter_minutes), latest)


def contact_timezone(
    contact_tz: str | None, account_country: str | None, owner_tz: str | None, default: str
) -> ZoneInfo:
    """The zone to read a contact's clock in; invalid names are skipped, never raised.

    In order: the contact's own IANA zone; the first zone tzdata lists for the account's
    country (``zone.tab``: America/New_York for US, Europe/Copenhagen for DK); the
    owner's zone; ``default``; UTC as the last resort.
    """
    country_tz = _country_zones().get(account_country.strip().upper()) if account_country else None
    for name in (contact_tz, country_tz, owner_tz, default):
        zone = _zone(name)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed key, a directory
        return None


@cache
def _country_zones() -> dict[str, str]:
    """Country code -> its first zone, from the tzdata package or the system's zoneinfo."""
    for text in _zone_tables():
        zones: dict[str, str] = {}
        for line in text.splitlines():
            fields = line.split("\t")
            if line.startswith("#") or len(fields) < 3:
                continue
            for code in fields[0].split(","):
                zones.setdefault(code.strip().upper(), fields[2].strip())
        if zones:
            return zones
    return {}


def _zone_tables() -> Iterator[str]:
    """The texts of ``zone.tab`` (one country a row), then of ``zone1970.tab``."""
    for name in ("zone.tab", "zone1970.tab"):
        packaged = _packaged_table(name)
        if packaged is not None:
            yield packaged
        for folder in TZPATH:
            path = Path(folder) / name
            if path.is_file():
                yield path.read_text("utf-8")


def _packaged_table(name: str) -> str | None:
    try:
        return resources.files("tzdata").joinpath("zoneinfo", name).read_text("utf-8")
    except (ModuleNotFoundError, OSError):
        return None


def _utc(instant: datetime) -> datetime:
    if instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: give a timezone-aware instant")
    return instant.astimezone(UTC)
